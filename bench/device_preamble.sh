# Sourced by the lent-GPU check scripts (bench/cuda_check.sh, bench/gpu_engine_check.sh) after they
# set OUT's default: the output folder, pykan from .whl when it travels as a wheel (the device
# image has the rest), and `timed NAME LIMIT_S COMMAND...`, which runs a command under a timeout,
# logs it to $OUT/NAME.txt and appends its wall time to $OUT/times.txt.
set -u -o pipefail
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PY:-python3}
if [ -d .whl ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site || exit 1
fi
timed() {
  local name=$1 limit=$2; shift 2
  local t0; t0=$(date +%s%N)
  timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.txt"; local rc=$?
  echo "== $name: rc $rc, $(( ($(date +%s%N) - t0) / 1000000 )) ms wall" | tee -a "$OUT/times.txt"
  return $rc
}
