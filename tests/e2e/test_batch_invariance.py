"""A member's rows do not depend on its ensemble, under every CPU kernel set torch can dispatch to.

torch picks its CPU kernels by instruction set (``ATEN_CPU_CAPABILITY``: default, avx2, avx512), and
a green run under one said nothing about the others: a silu MLP and a KAN's PINN differed from
themselves alone under AVX-512 only. ``invariance_runner.py`` trains every family and activation in
both dtypes, in ensembles of 1, 2, 3, 9 and 15 members, and compares; here it runs once per kernel
set this CPU has (a machine without AVX-512 cannot run those kernels: that case is skipped, saying so).
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

RUNNER = Path(__file__).resolve().parent / "invariance_runner.py"
FLAGS = {"default": set(), "avx2": {"avx2", "fma"}, "avx512": {"avx512f", "avx512bw", "avx512vl", "avx512dq"}}


def cpu_flags() -> set:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))


@pytest.mark.parametrize("capability", list(FLAGS))
def test_every_member_equals_itself_alone(capability):
    missing = FLAGS[capability] - cpu_flags()
    if missing:
        pytest.skip(f"this CPU cannot run torch's {capability} kernels (no {', '.join(sorted(missing))})")
    proc = subprocess.run([sys.executable, str(RUNNER)], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "ATEN_CPU_CAPABILITY": capability})
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["capability"].lower() == capability  # torch ran the kernels asked for
    assert result["runs"] == 36  # 6 families and activations x 3 problem kinds x 2 dtypes
    assert result["differences"] == [], result["differences"][:5]
