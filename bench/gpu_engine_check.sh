#!/usr/bin/env bash
# The GPU checks of the resident engine and the device policy (issue 23), for a lent GPU machine,
# in two parts of about 5 minutes of device time each; logs and times go to $OUT (the device tool
# brings that folder back) or /tmp/gpu_engine_check. Runs on the machine's preinstalled torch.
#   bash bench/gpu_engine_check.sh A   launches and graph replay, stream overlap, each family's tick
#                                      captured (every operation a tick uses), syncs per tick, replays
#                                      bit-equal, the CUDA tests (resident engine against the CPU,
#                                      sync-free ticks, quick sections), two identical quick runs
#   bash bench/gpu_engine_check.sh B   section1_1 --epochs 100 with --device cuda, cpu (all cores),
#                                      auto; section1_3 at its defaults with cuda and auto; timed
OUT=${OUT:-/tmp/gpu_engine_check}
source "$(dirname "$0")/device_preamble.sh"
R=/tmp/gpu_runs
case ${1:-A} in
  A)
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$OUT/times.txt"
    nproc | sed 's/^/cpus: /' | tee -a "$OUT/times.txt"
    $PY -c "import torch, numba, pandas, kan; print('torch', torch.__version__, 'numba', numba.__version__, 'pandas', pandas.__version__)" | tee -a "$OUT/times.txt"
    timed launches 30 $PY bench/gpu_engine_check.py launches
    timed ticks 90 $PY bench/gpu_engine_check.py ticks
    timed test_cuda 240 $PY -m pytest -x -q -p no:cacheprovider tests/e2e/test_cuda.py
    for i in 1 2; do
      timed quick$i 60 $PY section1_1.py --quick --device cuda --no-progress --results-dir $R/quick$i
    done
    timed identical 30 $PY bench/compare_runs.py $R/quick1 $R/quick2 --section section1_1 ;;
  B)
    timed s11_cuda 60 $PY section1_1.py --epochs 100 --device cuda --no-progress --results-dir $R/cuda
    timed s11_cpu 90 $PY section1_1.py --epochs 100 --device cpu --no-progress --results-dir $R/cpu
    timed s11_auto 60 $PY section1_1.py --epochs 100 --device auto --no-progress --results-dir $R/auto
    timed s13_cuda 150 $PY section1_3.py --device cuda --no-progress --results-dir $R/cuda
    timed s13_auto 150 $PY section1_3.py --device auto --no-progress --results-dir $R/auto ;;
  *) echo "usage: bash bench/gpu_engine_check.sh A|B" >&2; exit 2 ;;
esac
