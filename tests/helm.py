"""The Helm lane's tools: a ``helm`` and ``actionlint`` (docs/development.md, "The Helm lane").

``scripts/helm-setup.sh`` installs Helm v4's Go SDK (helm-python-sdk, driven with helm's command
lines by ``scripts/helm.py``) and actionlint into a cache folder (env ``KUBEVIRT_CCA_HELM_CACHE``,
else /var/cache/kubevirt-cca-helm). ``KUBEVIRT_CCA_HELM=/path/to/helm`` runs the same tests
through a real helm binary instead. Without either the tests skip with a reason;
``KUBEVIRT_CCA_HELM_REQUIRED=1`` (set by .ci/run) makes that a failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import NoReturn

import pytest

from tests.conftest import ROOT

CACHE = Path(os.environ.get("KUBEVIRT_CCA_HELM_CACHE", "/var/cache/kubevirt-cca-helm"))
SITE = CACHE / "site"
REQUIRED = os.environ.get("KUBEVIRT_CCA_HELM_REQUIRED") == "1"
CHART = ROOT / "charts" / "kubevirt-cca"
# The Helm version the SDK of scripts/helm-setup.sh is built from.
HELM_SDK_VERSION = "v4.2.3"


def helm_unavailable(reason: str) -> NoReturn:
    """Skip (or, with KUBEVIRT_CCA_HELM_REQUIRED=1, fail) saying what is missing."""
    message = f"{reason}; run scripts/helm-setup.sh (docs/development.md, 'The Helm lane')"
    if REQUIRED:
        pytest.fail(message + " (KUBEVIRT_CCA_HELM_REQUIRED=1)")
    pytest.skip(message)


def helm_command() -> tuple[list[str], dict[str, str]]:
    """The argv prefix that runs helm, and its environment."""
    env = dict(os.environ)
    binary = os.environ.get("KUBEVIRT_CCA_HELM")
    if binary:
        if not os.access(binary, os.X_OK):
            helm_unavailable(f"KUBEVIRT_CCA_HELM={binary} is not an executable")
        return [binary], env
    if not (SITE / "helm_python").is_dir():
        helm_unavailable(f"Helm's SDK is not installed in {SITE}")
    env["PYTHONPATH"] = str(SITE)
    return [sys.executable, str(ROOT / "scripts" / "helm.py")], env


def helm(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``helm ARGS``; with ``check``, a non-zero exit fails the test with helm's output."""
    command, env = helm_command()
    done = subprocess.run(
        [*command, *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        pytest.fail(
            f"helm {' '.join(args)} failed ({done.returncode}):\n{done.stderr}{done.stdout}"
        )
    return done


def actionlint() -> Path:
    """The actionlint binary of the cache."""
    binary = SITE / "bin" / "actionlint"
    if not os.access(binary, os.X_OK):
        helm_unavailable(f"actionlint is not installed in {SITE / 'bin'}")
    return binary
