"""Collect a Realm's attestation token through configfs-tsm, inside the guest.

The kernel's TSM report interface (Documentation/ABI/testing/configfs-tsm): make a directory
under ``/sys/kernel/config/tsm/report/``, check ``provider``, write the nonce to ``inblob``,
read the token from ``outblob``, remove the directory. In an Arm CCA Realm the provider is
``arm_cca_guest`` and the token is the RMM's CCA token, its realm challenge the nonce
zero-padded to 64 bytes.

Every path is read below ``root`` so tests can run against a fake tree. Every file is read with
a bound of its own (a byte more than the most it can sensibly hold), so a tree that is not the
kernel's (``realm_guest`` or ``provider`` pointing at ``/dev/zero``, a huge ``outblob``) gives
an error naming the file, never an unbounded read.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import time
from pathlib import Path

from kubevirt_cca.core.attestation.token import MAX_TOKEN_BYTES
from kubevirt_cca.core.attestation.verify import NONCE_MAX_BYTES, NONCE_MIN_BYTES
from kubevirt_cca.errors import AttestationError, CollectionError

log = logging.getLogger(__name__)

CONFIGFS_PATH = "sys/kernel/config"
TSM_REPORT_PATH = "sys/kernel/config/tsm/report"
REALM_GUEST_PATH = "sys/firmware/cca/realm_guest"
CCA_PROVIDER = "arm_cca_guest"
# The most each file can hold: realm_guest is "0" or "1" and a newline; a provider is a short
# driver name (arm_cca_guest, tdx_guest...); outblob is a token, which verify bounds the same.
MAX_REALM_GUEST_BYTES = 16
MAX_PROVIDER_BYTES = 64
MAX_OUTBLOB_BYTES = MAX_TOKEN_BYTES
# configfs creates a report's attribute files with the directory; wait briefly for them in case
# the tree populates them a moment later, then give up with a clear message.
POPULATE_TIMEOUT_S = 2.0
_POLL_S = 0.005


def collect_token(nonce: bytes, *, root: Path | str = "/") -> bytes:
    """The Realm's attestation token for ``nonce`` (32-64 bytes), as the RMM returned it.

    Raises :class:`AttestationError` for an unusable nonce and :class:`CollectionError` when
    this guest cannot produce a token (configfs not mounted, not a Realm, the RMM refused).
    """
    if not NONCE_MIN_BYTES <= len(nonce) <= NONCE_MAX_BYTES:
        raise AttestationError(
            f"the nonce is {len(nonce)} bytes; "
            f"configfs-tsm takes {NONCE_MIN_BYTES} to {NONCE_MAX_BYTES} bytes (for example: "
            "head -c 64 /dev/urandom > nonce.bin)"
        )
    base = Path(root)
    realm_guest = _read_realm_guest(base)
    if realm_guest == "0":
        raise CollectionError(
            f"this guest is not an Arm CCA Realm: /{REALM_GUEST_PATH} is 0; start the VM with "
            'the label cca.kubevirt.io/enabled: "true" on a CCA-capable node'
        )
    reports = base / TSM_REPORT_PATH
    if not reports.is_dir():
        raise CollectionError(_no_reports_message(base, realm_guest))
    report = reports / f"kubevirt-cca-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        report.mkdir()
    except OSError as exc:
        raise CollectionError(
            f"cannot create the report directory {_shown(base, report)}: {exc.strerror or exc} "
            "(run as root)"
        ) from exc
    log.info("configfs-tsm report directory created path=%s", report)
    try:
        return _run_report(base, report, nonce, realm_guest)
    finally:
        _remove(report)


def _run_report(base: Path, report: Path, nonce: bytes, realm_guest: str | None) -> bytes:
    provider_file = report / "provider"
    deadline = time.monotonic() + POPULATE_TIMEOUT_S
    while not provider_file.exists():
        if time.monotonic() > deadline:
            raise CollectionError(
                f"{_shown(base, report)} has no provider file: "
                f"/{TSM_REPORT_PATH} is not a configfs-tsm report directory"
            )
        time.sleep(_POLL_S)
    raw = _read(base, provider_file, MAX_PROVIDER_BYTES, "a driver name such as arm_cca_guest")
    provider = raw.decode("ascii", "replace").strip()
    if provider != CCA_PROVIDER:
        hint = "" if realm_guest == "1" else " (it may be an Intel TDX or AMD SEV-SNP guest)"
        raise CollectionError(
            f"the TSM provider is {provider!r}, not {CCA_PROVIDER}: "
            f"this guest is not an Arm CCA Realm{hint}"
        )
    try:
        with (report / "inblob").open("wb") as inblob:
            inblob.write(nonce)
    except OSError as exc:
        raise CollectionError(
            f"writing the nonce to {_shown(base, report / 'inblob')} failed: {exc.strerror or exc}"
        ) from exc
    token = _read(base, report / "outblob", MAX_OUTBLOB_BYTES, "one attestation token")
    if not token:
        raise CollectionError("the RMM returned an empty attestation token")
    log.info("attestation token collected provider=%s bytes=%d", provider, len(token))
    return token


def _at_most(path: Path, limit: int) -> bytes | None:
    """``path``'s bytes, read no further than one past ``limit``; ``None`` when it has more."""
    with path.open("rb") as handle:
        data = handle.read(limit + 1)
    return data if len(data) <= limit else None


def _too_large(base: Path, path: Path, limit: int, holds: str) -> CollectionError:
    return CollectionError(
        f"{_shown(base, path)} is larger than {limit} bytes; the kernel's file holds {holds}: "
        "this is not the file it should be"
    )


def _read(base: Path, path: Path, limit: int, holds: str) -> bytes:
    """At most ``limit`` bytes of ``path``; :class:`CollectionError` naming it when it has more."""
    try:
        data = _at_most(path, limit)
    except OSError as exc:
        raise CollectionError(
            f"reading {_shown(base, path)} failed: {exc.strerror or exc}"
            + ("; the RMM refused the attestation request" if exc.errno == errno.EIO else "")
        ) from exc
    if data is None:
        raise _too_large(base, path, limit, holds)
    return data


def _read_realm_guest(base: Path) -> str | None:
    path = base / REALM_GUEST_PATH
    try:
        data = _at_most(path, MAX_REALM_GUEST_BYTES)
    except FileNotFoundError:
        return None  # kernels before the realm_guest ABI: the TSM provider decides
    except OSError as exc:
        log.warning("cannot read /%s: %s", REALM_GUEST_PATH, exc.strerror or exc)
        return None
    if data is None:
        raise _too_large(base, path, MAX_REALM_GUEST_BYTES, "0 or 1")
    try:
        return data.decode("ascii").strip()
    except UnicodeDecodeError:
        log.warning("cannot read /%s: not ASCII", REALM_GUEST_PATH)
        return None


def _no_reports_message(base: Path, realm_guest: str | None) -> str:
    configfs = base / CONFIGFS_PATH
    mounted = configfs.is_dir() and any(configfs.iterdir())
    if not mounted:
        return (
            f"configfs is not mounted at /{CONFIGFS_PATH}; "
            f"mount it with 'mount -t configfs configfs /{CONFIGFS_PATH}' and retry"
        )
    if realm_guest is None:
        return (
            f"/{TSM_REPORT_PATH} does not exist and /{REALM_GUEST_PATH} is absent: "
            "this guest is not an Arm CCA Realm, "
            f"its Realm guest driver is a module not loaded yet ({_MODPROBE}), "
            "or its kernel lacks Realm guest support "
            "(Linux 6.13 or later with CONFIG_ARM_CCA_GUEST and CONFIG_TSM_REPORTS)"
        )
    return (
        f"/{TSM_REPORT_PATH} does not exist: the Realm guest driver is not loaded ({_MODPROBE}), "
        "or the kernel has no TSM report support (CONFIG_TSM_REPORTS)"
    )


# Debian's arm64 kernels build the attestation driver (and configfs-tsm) as modules.
_MODPROBE = "run 'modprobe arm-cca-guest'; Debian's arm64 kernels build it as a module"


def _remove(report: Path) -> None:
    try:
        report.rmdir()
    except FileNotFoundError:
        return
    except OSError as exc:
        log.warning("could not remove the report directory %s: %s", report, exc.strerror or exc)
        return
    log.info("configfs-tsm report directory removed path=%s", report)


def _shown(base: Path, path: Path) -> str:
    """A path as the guest sees it (without the test root)."""
    try:
        return "/" + str(path.relative_to(base))
    except ValueError:
        return str(path)
