"""QEMU started stopped (``-S``) with QMP on its standard input: ask, then quit.

The foreign-argument tests (``test_qemu_arguments.py``) start ``qemu-system-aarch64`` with the
arguments under test and read back what QEMU made of them: the machine's and devices' QOM
properties, the CPU's type, the accelerator (TCG's ``info jit`` answers only under TCG), or
the one-line error QEMU exits with.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_BASE = ("-S", "-nodefaults", "-display", "none", "-qmp", "stdio")
_HANG_GUARD_S = 60  # not a bound under test: QEMU quits at once when told to


@dataclass(frozen=True)
class Run:
    """What QEMU answered: its exit status, the ``return`` of each command, its error output."""

    returncode: int
    answers: tuple[Any, ...]
    stderr: str

    @property
    def started(self) -> bool:
        return self.returncode == 0


def run_qemu(binary: Path, args: Sequence[str], *commands: dict[str, Any]) -> Run:
    """Start QEMU with ``args``, send ``commands`` over QMP, quit; what came back."""
    script = [{"execute": "qmp_capabilities"}, *commands, {"execute": "quit"}]
    done = subprocess.run(
        [str(binary), *_BASE, *args],
        input="".join(json.dumps(command) + "\n" for command in script),
        capture_output=True,
        text=True,
        timeout=_HANG_GUARD_S,
        check=False,
    )
    replies = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    answers = tuple(
        reply["return"] if "return" in reply else reply["error"]
        for reply in replies
        if "return" in reply or "error" in reply
    )
    # the first answer is qmp_capabilities', the last quit's
    return Run(done.returncode, answers[1:-1], done.stderr)


def qom_get(path: str, prop: str) -> dict[str, Any]:
    return {"execute": "qom-get", "arguments": {"path": path, "property": prop}}


def hmp(command_line: str) -> dict[str, Any]:
    return {"execute": "human-monitor-command", "arguments": {"command-line": command_line}}
