"""Ask libvirt for its domain capabilities by running ``virsh`` (or a command an admin names).

The command runs in a process group of its own. What it prints is read with a size limit (its
output is a few tens of KiB; anything past :data:`STDOUT_LIMIT` is refused, and only the first
:data:`STDERR_LIMIT` bytes of its error output are kept, the rest drained and dropped), so a
flooding command cannot take the labeller past its memory limit. A ``stop`` event (the labeller's
SIGTERM) kills the whole group at once.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Sequence

from kubevirt_cca.errors import CapabilitiesError

COMMAND_TIMEOUT_SECONDS = 60
STDOUT_LIMIT = 4 * 1024 * 1024
STDERR_LIMIT = 64 * 1024
# The longest line of error output quoted in the reason (the report caps reasons again).
ERROR_LINE_LIMIT = 300
_CHUNK = 65536
_POLL_SECONDS = 0.1


def run_domcapabilities(command: Sequence[str], *, stop: threading.Event | None = None) -> str:
    """Run ``command`` and return its output; :class:`CapabilitiesError` saying why not."""
    if not command:
        raise CapabilitiesError("no domain capabilities command given")
    shown = " ".join(command)
    try:
        process = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        raise CapabilitiesError(f"{command[0]} is not installed or not on PATH") from exc
    except OSError as exc:
        raise CapabilitiesError(f"could not run {command[0]}: {exc}") from exc
    try:
        stdout, stderr = _read_bounded(process, shown, stop)
        returncode = process.wait()
    finally:
        _kill_group(process)
    if returncode != 0:
        text = (stderr or stdout).decode("utf-8", errors="replace")
        detail = text.strip().splitlines()
        last = detail[-1] if detail else f"exit status {returncode}"
        if len(last) > ERROR_LINE_LIMIT:
            last = f"{last[:ERROR_LINE_LIMIT]}… ({len(last) - ERROR_LINE_LIMIT} more characters)"
        raise CapabilitiesError(f"{shown} failed: {last}")
    try:
        return stdout.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CapabilitiesError(f"{shown} printed something that is not UTF-8 text") from exc


def _read_bounded(
    process: subprocess.Popen[bytes], shown: str, stop: threading.Event | None
) -> tuple[bytes, bytes]:
    """Both pipes until EOF, keeping at most the limits; raise on timeout, stop or overflow."""
    assert process.stdout is not None
    assert process.stderr is not None
    kept = {process.stdout.fileno(): bytearray(), process.stderr.fileno(): bytearray()}
    limits = {process.stdout.fileno(): STDOUT_LIMIT, process.stderr.fileno(): STDERR_LIMIT}
    deadline = time.monotonic() + COMMAND_TIMEOUT_SECONDS
    with selectors.DefaultSelector() as selector:
        for fd in kept:
            selector.register(fd, selectors.EVENT_READ)
        while selector.get_map():
            if stop is not None and stop.is_set():
                raise CapabilitiesError(f"{shown} was stopped (the labeller is shutting down)")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CapabilitiesError(
                    f"{shown} did not answer within {COMMAND_TIMEOUT_SECONDS} s"
                )
            for key, _ in selector.select(min(remaining, _POLL_SECONDS)):
                fd = int(key.fd)
                chunk = os.read(fd, _CHUNK)
                if not chunk:
                    selector.unregister(fd)
                    continue
                room = limits[fd] - len(kept[fd])
                if fd == process.stdout.fileno() and len(chunk) > room:
                    raise CapabilitiesError(
                        f"{shown} printed more than {STDOUT_LIMIT // (1024 * 1024)} MiB: "
                        "that is not domain capabilities XML"
                    )
                kept[fd] += chunk[: max(room, 0)]  # error output past the limit is dropped
    return bytes(kept[process.stdout.fileno()]), bytes(kept[process.stderr.fileno()])


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """Kill the command's whole process group (it may have started children) and reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)
    for pipe in (process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()
