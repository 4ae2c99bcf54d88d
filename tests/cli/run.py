"""Run the real ``kubevirt-cca`` command in a subprocess, as a person would."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def kubevirt_cca(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kubevirt_cca", *args],
        capture_output=True,
        text=True,
        input=stdin,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
