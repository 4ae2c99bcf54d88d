"""Where the real peers come from: ../shared/peers, unpacked and checked by its unpack.py.

The lane skips with a reason when ../shared/peers is absent or a runtime need is missing;
``KUBEVIRT_CCA_PEERS_REQUIRED=1`` (set by .ci/run) turns every such skip into a failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import NoReturn

import pytest

from tests.conftest import SHARED

PEERS = SHARED / "peers"
REQUIRED = os.environ.get("KUBEVIRT_CCA_PEERS_REQUIRED") == "1"


def peers_unavailable(reason: str) -> NoReturn:
    """Skip (or, with KUBEVIRT_CCA_PEERS_REQUIRED=1, fail) saying what is missing."""
    message = f"peers lane: {reason} - run scripts/peers-lane-setup.sh (Debian 12)"
    if REQUIRED:
        pytest.fail(message + " (KUBEVIRT_CCA_PEERS_REQUIRED=1)")
    pytest.skip(message)


def unpack(*names: str) -> Path:
    """Unpack ``names`` from ../shared/peers (checksums checked) and return the folder."""
    script = PEERS / "scripts" / "unpack.py"
    if not script.exists():
        peers_unavailable(f"{PEERS} is absent (the real peers live beside the project)")
    command = [sys.executable, str(script), "--quiet", "--only", ",".join(names)]
    cache = os.environ.get("KUBEVIRT_CCA_PEERS_CACHE")
    if cache:
        command.insert(2, cache)
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        pytest.fail(f"unpack.py failed ({done.returncode}): {done.stderr[-2000:]}")
    return Path(done.stdout.strip())
