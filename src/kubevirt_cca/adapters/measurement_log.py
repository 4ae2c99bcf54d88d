"""Read a Realm's measurement log inside the guest: the CCEL event log Linux exposes.

UEFI firmware for confidential guests keeps its event log in memory and points ACPI's CCEL
table at it; Linux (6.4 and later, with ACPI) exposes the log area as the file
``/sys/firmware/acpi/tables/data/CCEL`` (root only). A guest booted with a device tree instead
of ACPI, or whose firmware keeps no log, has no such file: there is no other standard place
for a Realm's log today (see docs/attestation.md). Every path is read below ``root`` so tests
can run against a fake tree.
"""

from __future__ import annotations

import logging
from pathlib import Path

from kubevirt_cca.errors import CollectionError

log = logging.getLogger(__name__)

CCEL_PATH = "sys/firmware/acpi/tables/data/CCEL"
ACPI_TABLES_PATH = "sys/firmware/acpi/tables"
MAX_LOG_BYTES = 16 * 2**20


def read_measurement_log(*, root: Path | str = "/") -> bytes:
    """The raw CCEL log area, or :class:`CollectionError` saying why this guest has none."""
    base = Path(root)
    path = base / CCEL_PATH
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_LOG_BYTES + 1)
    except FileNotFoundError as exc:
        raise CollectionError(_missing_reason(base)) from exc
    except OSError as exc:
        raise CollectionError(
            f"reading /{CCEL_PATH} failed: {exc.strerror or exc} (run as root)"
        ) from exc
    if len(data) > MAX_LOG_BYTES:
        raise CollectionError(f"/{CCEL_PATH} is larger than {MAX_LOG_BYTES} bytes")
    if not data:
        raise CollectionError(f"/{CCEL_PATH} is empty: the firmware logged nothing")
    log.info("measurement log read path=/%s bytes=%d", CCEL_PATH, len(data))
    return data


def _missing_reason(base: Path) -> str:
    if not (base / ACPI_TABLES_PATH).is_dir():
        return (
            f"no measurement log: /{ACPI_TABLES_PATH} is absent, so this guest booted without ACPI "
            "(a device tree boot has no CCEL table); "
            "boot the Realm through the CCA firmware with ACPI to get a log"
        )
    return (
        f"no measurement log: /{CCEL_PATH} is absent; the firmware published no CCEL table "
        '(start the VM with "measurementLog": true and a CCA firmware that keeps an event '
        "log) or the kernel is older than 6.4"
    )
