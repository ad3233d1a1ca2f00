"""The command line refuses a mistake in one line, exit 2, before anything is trained or created (issue 22).

In-process: a refusal comes while parsing or planning, in milliseconds. Each command is a small run
otherwise, so that a check that lets it through fails here in seconds, not after a whole sweep.
"""
import re

import pytest

from utils.pipeline import cli
from utils.sections import SECTIONS

SMALL = {"section1_1": ["--quick", "--epochs", "1", "--datasets", "sin_freq1", "--models", "mlp"],
         "section1_2": ["--quick", "--epochs", "1", "--datasets", "poisson_1d_sin", "--models", "mlp"],
         "section1_3": ["--quick", "--epochs", "1", "--datasets", "poisson_2d_sin", "--models", "mlp"]}


@pytest.mark.parametrize("section,args,message", [
    # an unset variable in a job script must not start a new sweep
    ("section1_1", ["--resume", ""], "argument --resume: must name a run's timestamp (like 20251022_203715), got an "
                                     "empty string"),
    ("section1_1", ["--resume", " "], "got ' '"),
    ("section1_1", ["--resume", "latest"], "got 'latest'"),
    # not finite is not positive
    ("section1_1", ["--prune-lamb", "inf"], "argument --prune-lamb: must be positive and finite, got inf"),
    ("section1_1", ["--prune-node-th", "inf"], "argument --prune-node-th: must be positive and finite"),
    ("section1_1", ["--prune-edge-th", "nan"], "argument --prune-edge-th: must be positive and finite, got nan"),
    ("section1_2", ["--alpha", "inf"], "argument --alpha: must be positive and finite, got inf"),
    ("section1_2", ["--alpha=-inf"], "argument --alpha: must be positive and finite"),
    # sizes that would ask for terabytes
    ("section1_1", ["--width", "1000000"], "argument --width: must be at most 1,000, got 1,000,000"),
    ("section1_1", ["--kan-width", "5000"], "argument --kan-width: must be at most 1,000"),
    ("section1_1", ["--epochs", "1000000"], "argument --epochs: must be at most 100,000"),
    ("section1_2", ["--n-interior", "100000000"], "argument --n-interior: must be at most 1,000,000"),
    ("section1_3", ["--n-boundary", "100000000"], "argument --n-boundary: must be at most 1,000,000"),
    # fewer boundary points than sides of the square would leave none on each side (NaN losses)
    ("section1_3", ["--n-boundary", "3"], "--n-boundary: must be at least 4 (a point on each side of the domain), "
                                          "got 3"),
    # ports
    ("section1_1", ["--scheduler", "127.0.0.1:99999"], "argument --scheduler: the port must lie in 1..65535, got 9999"),
    ("section1_1", ["--scheduler", "tcp://127.0.0.1:0"], "the port must lie in 1..65535, got 0"),
    ("section1_1", ["--scheduler", "tcp://[::1]"], "expected an address such as tcp://host:8786"),
])
def test_a_mistake_is_one_line_exit_2_and_creates_nothing(tmp_path, capsys, section, args, message):
    results = tmp_path / "r"
    with pytest.raises(SystemExit) as e:
        cli.main(section, [*SMALL[section], "--workers", "1", "--no-progress", *args, "--results-dir", str(results)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith(f"{section}.py: error: ") and message in err, err
    assert err.count("\n") == 1
    assert not results.exists()


@pytest.mark.parametrize("address", ["tcp://[::1]:8786", "[::1]:8786", "tls://[fe80::1]:8786", "tcp://127.0.0.1:8786",
                                     "localhost:65535", "tcp://node-12.cluster:1"])
def test_scheduler_addresses_ipv6_included(address):
    assert cli.scheduler_address(address) == address


def test_the_timestamp_check_is_the_storage_contracts():
    from utils.storage.layouts import TS
    assert cli.TIMESTAMP.pattern == TS


@pytest.mark.parametrize("section", list(SECTIONS))
def test_help_states_each_default_once(section):
    text = " ".join(cli.build_parser(SECTIONS[section]).format_help().split())
    assert "(default: None)" not in text
    assert not re.search(r"\(default [^)]*\) \(default", text), text
    assert "(default 100, 6 with --quick)" in text and "(default: float64)" in text
