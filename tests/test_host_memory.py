"""Freed tensor memory stays in the process (utils.host_memory): no page fault per reuse of a block."""
import subprocess
import sys
from pathlib import Path

import pytest

from utils.host_memory import keep_freed_memory

ROOT = Path(__file__).resolve().parent.parent

# a PINN evaluation's pattern: several 1.6 MB tensors written, then all freed, over and over
PROBE = """
import resource, sys
import torch
sys.path.insert(0, {root!r})
from utils.host_memory import keep_freed_memory
if {keep}:
    assert keep_freed_memory()
def churn():
    ts = [torch.ones(400_000) for _ in range(8)]
    del ts
churn()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    churn()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(keep: bool) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE.format(root=str(ROOT), keep=keep)], capture_output=True,
                         text=True, check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not keep_freed_memory(), reason="glibc's allocator only")
def test_freed_blocks_are_reused_without_page_faults():
    """20 rounds of 8 x 1.6 MB touch 64,000 pages. glibc's defaults hand the freed heap back to the kernel
    each round and fault most pages in again (measured: 62,000 faults); kept, under 2,000 (measured: 400)."""
    kept, default = faults(True), faults(False)
    assert kept < 2_000 < 20_000 < default
