"""Host probes: the facts behind a node's "why not". Each one reports; none raises.

Every path is read below ``root`` so tests (and the labeller, with the host's ``/`` mounted
read-only somewhere) can point the probes at another tree.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from kubevirt_cca.constants import KVM_RMI_PARAMETERS, RMI_ABI_LOG_MARKER
from kubevirt_cca.core.node.detection_report import HostEvidence

# Where the kernel's own log can be read, in order: the live ring buffer, then saved copies.
KMSG_PATH = "dev/kmsg"
KERNEL_LOG_PATHS = (KMSG_PATH, "var/log/dmesg", "var/log/kern.log")
# kernel.dmesg_restrict: 1 lets only CAP_SYSLOG read the kernel log. A sysctl of the running
# kernel, so the container's own /proc shows the host's value when the tree has no /proc.
DMESG_RESTRICT_PATH = "proc/sys/kernel/dmesg_restrict"
ARCH_PATH = "proc/sys/kernel/arch"
_KMSG_RECORD_LIMIT = 100_000
# A saved kernel log can be hundreds of MiB (a 128 Mi container must not read it whole).
KERNEL_LOG_SCAN_LIMIT = 256 * 1024 * 1024
LINE_LIMIT = 4096
_CHUNK = 1024 * 1024
_PARAMETER_LIMIT = 4096


def probe_host(root: Path | str = "/") -> HostEvidence:
    """Run every probe under ``root``."""
    base = Path(root)
    notes: list[str] = []
    abi_line, log_read = probe_rmi_abi_line(base, notes)
    return HostEvidence(
        arch=probe_arch(base),
        kvm_device=probe_kvm_device(base),
        rmi_parameters=probe_rmi_parameters(base, notes),
        rmi_abi_line=abi_line,
        kernel_log_read=log_read,
        notes=tuple(notes),
    )


def probe_arch(root: Path) -> str:
    """The machine architecture: the tree's ``/proc/sys/kernel/arch``, else this kernel's."""
    try:
        text = (root / ARCH_PATH).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        text = ""
    return text or os.uname().machine


def probe_kvm_device(root: Path) -> bool:
    """Whether ``/dev/kvm`` exists (a character device on a real host; any file in a fake tree)."""
    path = root / "dev/kvm"
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISREG(mode)


def probe_rmi_parameters(root: Path, notes: list[str]) -> dict[str, str | None]:
    """The KVM module's RMI/RME capability parameters, by file name; ``None`` when absent."""
    found: dict[str, str | None] = {}
    for relative in KVM_RMI_PARAMETERS:
        name = relative.rsplit("/", 1)[-1]
        try:
            with (root / relative).open("rb") as file:
                found[name] = file.read(_PARAMETER_LIMIT).decode("ascii").strip()
        except FileNotFoundError:
            found[name] = None
        except (OSError, UnicodeDecodeError) as exc:
            found[name] = None
            notes.append(f"could not read /{relative}: {exc}")
    return found


def probe_rmi_abi_line(root: Path, notes: list[str]) -> tuple[str | None, bool]:
    """The kernel log line with ``RMI ABI version``, and whether any kernel log was readable.

    Logs are scanned in chunks (memory stays bounded however large the file): at most
    :data:`KERNEL_LOG_SCAN_LIMIT` bytes of each, and the line found is cut at
    :data:`LINE_LIMIT` bytes.
    """
    for relative in KERNEL_LOG_PATHS:
        path = root / relative
        try:
            if path.name == "kmsg" and path.is_char_device():
                line = _scan_kmsg(path)
            else:
                line = _scan_file(path, relative, notes)
        except FileNotFoundError:
            continue
        except OSError as exc:
            note = f"could not read /{relative}: {exc.strerror or exc}"
            if relative == KMSG_PATH and exc.errno in (errno.EPERM, errno.EACCES):
                note += _kmsg_denied_hint(root)
            notes.append(note)
            continue
        return line, True
    return None, False


def _kmsg_denied_hint(root: Path) -> str:
    """Why reading the kernel log was refused, as far as the sysctl tells."""
    for base in (root, Path("/")):
        try:
            value = (base / DMESG_RESTRICT_PATH).read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            continue
        if value == "1":
            return (
                " (kernel.dmesg_restrict=1: "
                "only a process with CAP_SYSLOG may read the kernel log; "
                "the saved copies under /var/log are read instead)"
            )
        return f" (kernel.dmesg_restrict={value})"
    return ""


def _line_at(data: bytes, at: int) -> str:
    start = data.rfind(b"\n", 0, at) + 1
    end = data.find(b"\n", at)
    line = data[start : end if end >= 0 else len(data)][:LINE_LIMIT]
    return line.decode("utf-8", errors="replace").strip()


def _scan_file(path: Path, relative: str, notes: list[str]) -> str | None:
    """The first line holding the marker, reading ``path`` a chunk at a time."""
    marker = RMI_ABI_LOG_MARKER.encode()
    scanned = 0
    carry = b""
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            scanned += len(chunk)
            data = carry + chunk
            at = data.find(marker)
            if at >= 0:
                if data.find(b"\n", at) < 0:  # the rest of the line is in the next chunk
                    data += file.read(LINE_LIMIT)
                return _line_at(data, at)
            carry = data[-LINE_LIMIT:]
            if scanned >= KERNEL_LOG_SCAN_LIMIT:
                notes.append(
                    f"/{relative}: "
                    f"only its first {KERNEL_LOG_SCAN_LIMIT // 2**20} MiB were searched for the "
                    "RMI ABI line"
                )
                break
    return None


def _scan_kmsg(path: Path) -> str | None:
    """The first record in ``/dev/kmsg`` with the marker, without waiting for new ones."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        for _ in range(_KMSG_RECORD_LIMIT):
            try:
                record = os.read(fd, 8192)
            except OSError as exc:
                if exc.errno == errno.EAGAIN:
                    break
                if exc.errno == errno.EPIPE:  # overwritten record; the next read goes on
                    continue
                raise
            if not record:
                break
            # A record is "prefix;message\n" with continuation lines after it.
            message = record.split(b";", 1)[-1]
            at = message.find(RMI_ABI_LOG_MARKER.encode())
            if at >= 0:
                return _line_at(message, at)
    finally:
        os.close(fd)
    return None
