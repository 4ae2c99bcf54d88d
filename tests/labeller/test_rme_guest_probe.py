"""The labeller's question to QEMU, asked of a real QEMU (the boot lane installs it).

The init container runs ``RME_GUEST_SCRIPT`` in the virt-launcher image. Here the same script
runs under ``/bin/sh`` against this machine's ``qemu-system-aarch64`` (which has no
``rme-guest``): its answer must be read as "QEMU does not know the object". Real answers for
other object types check that the parser reads QEMU's help format as QEMU prints it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from kubevirt_cca.constants import QEMU_BINARIES
from kubevirt_cca.core.install.labeller_manifests import RME_GUEST_SCRIPT
from kubevirt_cca.core.install.names import RME_GUEST_HELP_FILE
from kubevirt_cca.core.node.honoured import parse_rme_guest_help

REQUIRED = os.environ.get("KUBEVIRT_CCA_BOOT_REQUIRED") == "1"


@pytest.fixture(scope="module")
def qemu() -> str:
    path = shutil.which("qemu-system-aarch64")
    if path is None:
        message = (
            "qemu-system-aarch64 is not installed (scripts/ of the boot lane install it: "
            "apt-get install qemu-system-arm)"
        )
        if REQUIRED:
            pytest.fail(message + " (KUBEVIRT_CCA_BOOT_REQUIRED=1)")
        pytest.skip(message)
    return path


def help_of(qemu: str, qom_type: str) -> str:
    done = subprocess.run(
        [qemu, "-object", f"{qom_type},help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.stdout + done.stderr


def test_the_init_script_asks_qemu_and_an_unknown_object_honours_nothing(
    qemu: str, tmp_path: Path
) -> None:
    answer_file = tmp_path / "rme_guest_help.txt"
    script = RME_GUEST_SCRIPT.replace(
        shlex.quote(RME_GUEST_HELP_FILE), shlex.quote(str(answer_file))
    )
    for binary in QEMU_BINARIES:  # the image's paths, pointed at this machine's QEMU
        script = script.replace(shlex.quote(binary), shlex.quote(qemu), 1)
    done = subprocess.run(
        ["/bin/sh", "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    answer = parse_rme_guest_help(answer_file.read_text())
    assert answer.known is False
    assert "rme-guest" in answer.answer  # QEMU's own error line, kept as evidence


def test_no_qemu_binary_leaves_no_answer_and_still_succeeds(tmp_path: Path) -> None:
    answer_file = tmp_path / "rme_guest_help.txt"
    script = RME_GUEST_SCRIPT.replace(
        shlex.quote(RME_GUEST_HELP_FILE), shlex.quote(str(answer_file))
    )
    for binary in QEMU_BINARIES:
        script = script.replace(shlex.quote(binary), shlex.quote(str(tmp_path / "absent")), 1)
    done = subprocess.run(
        ["/bin/sh", "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0 and not answer_file.exists()


def test_qemu_help_format_is_read_as_qemu_prints_it(qemu: str) -> None:
    """Real answers for other types, renamed: the no-options line and property lines."""
    no_options = help_of(qemu, "can-bus").replace("can-bus", "rme-guest")
    assert parse_rme_guest_help(no_options).known is True
    assert parse_rme_guest_help(no_options).properties == ()
    listed = help_of(qemu, "memory-backend-ram")
    lines = [line for line in listed.splitlines()[1:] if line.strip()]
    answer = parse_rme_guest_help(
        listed.replace("memory-backend-ram options:", "rme-guest options:")
    )
    assert answer.known is True
    assert len(answer.properties) == len(lines)
    assert {"dump", "host-nodes", "merge", "policy"} <= set(answer.properties)
    # Properties without a description (QEMU prints only NAME=<TYPE>) are read too.
    secret = parse_rme_guest_help(
        help_of(qemu, "secret").replace("secret options:", "rme-guest options:")
    )
    assert {"data", "file", "format", "keyid"} <= set(secret.properties)
