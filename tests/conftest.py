"""Shared test fixtures: where ../shared is, and whether libvirt's schema is installed; and the
switch that makes every skip a failure where nothing may skip (CI)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Generator
from pathlib import Path

import pytest
from _pytest.reports import CollectReport, TestReport
from hypothesis import settings

# Property tests judge what the code does, never how fast one example runs: Hypothesis' default
# 200 ms deadline per example is a wall-clock bound that goes red on a busy machine. A failure
# prints the blob that replays it (@reproduce_failure), since CI draws fresh seeds each run.
settings.register_profile("kubevirt-cca", deadline=None, print_blob=True)
settings.load_profile("kubevirt-cca")

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
SHARED = ROOT.parent / "shared"
KUBEVIRT_FIXTURES = SHARED / "fixtures" / "kubevirt"
LIBVIRT_SCHEMAS = Path("/usr/share/libvirt/schemas")


def shared_path(*parts: str) -> Path:
    """A path under ../shared, skipping the test with a reason when it is not there."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(
            f"../shared is absent ({path} not found); run with the shared fixtures beside "
            "the project to include this test"
        )
    return path


def shared_files(*parts: str, pattern: str) -> list[Path]:
    """Files under ../shared for parametrising at collection time (empty when absent)."""
    folder = SHARED.joinpath(*parts)
    return sorted(folder.glob(pattern)) if folder.is_dir() else []


@pytest.fixture(scope="session")
def libvirt_schema_dir() -> Path:
    """libvirt's RNG schemas (Debian libvirt-clients); skip when not installed."""
    if not (LIBVIRT_SCHEMAS / "domain.rng").exists() or shutil.which("xmllint") is None:
        pytest.skip(
            "libvirt's RNG schema or xmllint is not installed "
            "(apt-get install libvirt-clients libxml2-utils; .ci/run does this)"
        )
    return LIBVIRT_SCHEMAS


# CI sets KUBEVIRT_CCA_NO_SKIPS=1 (.ci/run): there every lane is prepared, so a skip, whatever
# test or fixture asked for it and whatever its lane's own *_REQUIRED switch says, is a failure
# carrying the skip's reason. Deselecting with -m is not a skip and stays possible.
NO_SKIPS_SWITCH = "KUBEVIRT_CCA_NO_SKIPS"


def _skips_forbidden() -> bool:
    return os.environ.get(NO_SKIPS_SWITCH) == "1"


def _fail_skipped(report: TestReport | CollectReport) -> None:
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    report.outcome = "failed"
    report.longrepr = f"{NO_SKIPS_SWITCH}=1, so nothing may skip, but: {reason}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, TestReport, TestReport]:
    report = yield
    if _skips_forbidden():
        _fail_skipped(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, CollectReport, CollectReport]:
    report = yield
    if _skips_forbidden():
        _fail_skipped(report)
    return report
