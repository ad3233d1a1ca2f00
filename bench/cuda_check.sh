#!/usr/bin/env bash
# The CUDA checks of the ensemble engine, for a lent GPU machine (issues 11 and 12), in two parts
# so that a failing first part costs little device time:
#   bash bench/cuda_check.sh tests     the CUDA tests (quick sections included)
#   bash bench/cuda_check.sh timings   section1_1 --epochs 100 and section1_3 at defaults, timed
# Logs go to $OUT (the device tool brings that folder back) or /tmp/cuda_check.
set -u -o pipefail
OUT=${OUT:-/tmp/cuda_check}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PY:-python3}
if [ -d .whl ]; then   # pykan travels as a wheel (the device image has the rest)
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site || exit 1
fi
timed() {  # timed NAME LIMIT_S COMMAND...: runs it, logs it to $OUT/NAME.txt, prints the wall time
  local name=$1 limit=$2; shift 2
  local t0; t0=$(date +%s%N)
  timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.txt"; local rc=$?
  echo "== $name: rc $rc, $(( ($(date +%s%N) - t0) / 1000000 )) ms wall" | tee -a "$OUT/times.txt"
  return $rc
}
case ${1:-tests} in
  tests)
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/times.txt"
    $PY -c "import torch, numba, pandas, kan; print('torch', torch.__version__, 'numba', numba.__version__, 'pandas', pandas.__version__)" | tee -a "$OUT/times.txt"
    timed test_cuda 240 $PY -m pytest -x -q -p no:cacheprovider tests/e2e/test_cuda.py ;;
  timings)
    timed section1_1 120 $PY section1_1.py --epochs 100 --device cuda --no-progress --results-dir /tmp/results
    timed section1_3 330 $PY section1_3.py --device cuda --no-progress --results-dir /tmp/results ;;
esac
