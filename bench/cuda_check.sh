#!/usr/bin/env bash
# The CUDA checks of the ensemble engine, for a lent GPU machine (issues 11 and 12), in two parts
# so that a failing first part costs little device time:
#   bash bench/cuda_check.sh tests     the CUDA tests (quick sections included)
#   bash bench/cuda_check.sh timings   section1_1 --epochs 100 and section1_3 at defaults, timed
# Logs go to $OUT (the device tool brings that folder back) or /tmp/cuda_check.
OUT=${OUT:-/tmp/cuda_check}
source "$(dirname "$0")/device_preamble.sh"
case ${1:-tests} in
  tests)
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/times.txt"
    $PY -c "import torch, numba, pandas, kan; print('torch', torch.__version__, 'numba', numba.__version__, 'pandas', pandas.__version__)" | tee -a "$OUT/times.txt"
    timed test_cuda 240 $PY -m pytest -x -q -p no:cacheprovider tests/e2e/test_cuda.py ;;
  timings)
    timed section1_1 120 $PY section1_1.py --epochs 100 --device cuda --no-progress --results-dir /tmp/results
    timed section1_3 330 $PY section1_3.py --device cuda --no-progress --results-dir /tmp/results ;;
esac
