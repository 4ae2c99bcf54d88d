"""Every benchmark still runs (issue 24, item 9): each script under benchmarks/ once, with the
smallest arguments it accepts, as ``docs/performance.md`` runs it. Figures are not judged here
(benchmarks measure, tests do not time); exit 1 is a benchmark saying a target was missed on
this run, which on a machine busy with the rest of the suite says nothing. A usage error, a
traceback or any other exit status means the benchmark broke, as bench_doctor.py once did
unnoticed when the doctor command gained an option."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

BENCHMARKS = ROOT / "benchmarks"
SMOKE = {
    "bench_attest.py": ["--calls", "5"],
    "bench_cli.py": ["--calls", "1"],
    "bench_doctor.py": ["--nodes", "20", "--calls", "2"],
    "bench_hook.py": ["--calls", "1000"],  # its smallest for a p99
    "bench_plugin_hook.py": ["--calls", "1000"],
    "bench_reference.py": ["--calls", "1"],
    "bench_rewrite.py": ["--calls", "20"],
    "bench_labeller.py": ["--cycles", "3"],
    "bench_webhook.py": ["--seconds", "0.3", "--repeat", "1", "--no-pin"],
    "bench_hostile.py": ["--seconds", "0.2", "--slow", "20"],
    "profile_admission.py": ["--calls", "20"],
}


def test_every_benchmark_is_listed() -> None:
    scripts = {p.name for p in BENCHMARKS.glob("*.py")} - {"hook_inputs.py", "timing.py"}
    assert scripts == set(SMOKE), "a new benchmark needs its smoke arguments here"


@pytest.mark.parametrize("script", sorted(SMOKE))
def test_the_benchmark_runs(script: str) -> None:
    done = subprocess.run(
        [sys.executable, script, *SMOKE[script]],
        cwd=BENCHMARKS,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode in (0, 1), (done.returncode, done.stdout, done.stderr)
    assert done.stdout.strip(), "a benchmark prints its figures"
