"""Ask libvirt for its domain capabilities by running ``virsh`` (or a command an admin names)."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

from kubevirt_cca.errors import CapabilitiesError

COMMAND_TIMEOUT_SECONDS = 60


def run_domcapabilities(command: Sequence[str]) -> str:
    """Run ``command`` and return its output; :class:`CapabilitiesError` saying why not."""
    if not command:
        raise CapabilitiesError("no domain capabilities command given")
    try:
        done = subprocess.run(
            list(command), capture_output=True, text=True, timeout=COMMAND_TIMEOUT_SECONDS,
            check=False,
        )
    except FileNotFoundError as exc:
        raise CapabilitiesError(f"{command[0]} is not installed or not on PATH") from exc
    except subprocess.TimeoutExpired as exc:
        raise CapabilitiesError(
            f"{' '.join(command)} did not answer within {COMMAND_TIMEOUT_SECONDS} s"
        ) from exc
    except OSError as exc:
        raise CapabilitiesError(f"could not run {command[0]}: {exc}") from exc
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        last = detail[-1] if detail else f"exit status {done.returncode}"
        raise CapabilitiesError(f"{' '.join(command)} failed: {last}")
    return done.stdout
