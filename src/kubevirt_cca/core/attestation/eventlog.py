"""A Realm's measurement log (the CCEL event log), read and replayed against a token's REMs.

What firmware measures into the four Realm Extensible Measurements it also logs, in the TCG2
"crypto agile" event log format (TCG PC Client Platform Firmware Profile) that UEFI writes
for confidential guests and that ACPI's CCEL table points to: a first ``EV_NO_ACTION`` event
in the old SHA-1 layout carrying the "Spec ID Event03" header (which algorithms, which digest
sizes), then ``TCG_PCR_EVENT2`` records: register index, event type, one digest per algorithm,
event data. In a confidential-computing log the register index is a CC measurement register,
not a TPM PCR: 0 is the RIM, 1 to 4 are REM0 to REM3 (the same numbering RSI_MEASUREMENT_EXTEND
uses).

:func:`replay` applies the RMM's rule for each event, ``REM = H(REM || digest)`` from a zero
REM, and says per REM whether the token's value is explained. Unused log space (CCEL areas are
fixed-size) is 0xFF or zero and ends the log. Pure, and hardened: the log comes from the host
side before the guest started and every length in it is checked.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from kubevirt_cca.errors import MeasurementLogError

REM_COUNT: Final = 4
MAX_EVENTS: Final = 100_000
SPEC_ID_SIGNATURE: Final = b"Spec ID Event03\0"
EV_NO_ACTION: Final = 0x3
TCG_ALGORITHMS: Final = {
    0x0004: "sha1",
    0x000B: "sha256",
    0x000C: "sha384",
    0x000D: "sha512",
    0x0012: "sm3_256",
}
TOKEN_ALGORITHMS: Final = {"sha-256": "sha256", "sha-384": "sha384", "sha-512": "sha512"}
EVENT_TYPES: Final = {
    0x0: "EV_PREBOOT_CERT",
    0x1: "EV_POST_CODE",
    0x2: "EV_UNUSED",
    0x3: "EV_NO_ACTION",
    0x4: "EV_SEPARATOR",
    0x5: "EV_ACTION",
    0x6: "EV_EVENT_TAG",
    0x7: "EV_S_CRTM_CONTENTS",
    0x8: "EV_S_CRTM_VERSION",
    0x9: "EV_CPU_MICROCODE",
    0xA: "EV_PLATFORM_CONFIG_FLAGS",
    0xB: "EV_TABLE_OF_DEVICES",
    0xC: "EV_COMPACT_HASH",
    0xD: "EV_IPL",
    0xE: "EV_IPL_PARTITION_DATA",
    0xF: "EV_NONHOST_CODE",
    0x10: "EV_NONHOST_CONFIG",
    0x11: "EV_NONHOST_INFO",
    0x12: "EV_OMIT_BOOT_DEVICE_EVENTS",
    0x80000001: "EV_EFI_VARIABLE_DRIVER_CONFIG",
    0x80000002: "EV_EFI_VARIABLE_BOOT",
    0x80000003: "EV_EFI_BOOT_SERVICES_APPLICATION",
    0x80000004: "EV_EFI_BOOT_SERVICES_DRIVER",
    0x80000005: "EV_EFI_RUNTIME_SERVICES_DRIVER",
    0x80000006: "EV_EFI_GPT_EVENT",
    0x80000007: "EV_EFI_ACTION",
    0x80000008: "EV_EFI_PLATFORM_FIRMWARE_BLOB",
    0x80000009: "EV_EFI_HANDOFF_TABLES",
    0x8000000A: "EV_EFI_PLATFORM_FIRMWARE_BLOB2",
    0x8000000B: "EV_EFI_HANDOFF_TABLES2",
    0x8000000C: "EV_EFI_VARIABLE_BOOT2",
    0x80000010: "EV_EFI_HCRTM_EVENT",
    0x800000E0: "EV_EFI_VARIABLE_AUTHORITY",
    0x800000E1: "EV_EFI_SPDM_FIRMWARE_BLOB",
    0x800000E2: "EV_EFI_SPDM_FIRMWARE_CONFIG",
}
_VARIABLE_TYPES = (0x80000001, 0x80000002, 0x8000000C, 0x800000E0)
_IMAGE_TYPES = (0x80000003, 0x80000004, 0x80000005)
_DESCRIBED_BLOB_TYPES = (0x8000000A, 0x8000000B)
_MAX_DESCRIPTION = 120


@dataclass(frozen=True)
class LogEvent:
    offset: int  # where the event starts in the log, for messages
    mr_index: int  # 0 RIM, 1..4 REM0..REM3
    event_type: int
    digests: tuple[tuple[str, bytes], ...]  # (algorithm, digest)
    data: bytes

    @property
    def type_name(self) -> str:
        return EVENT_TYPES.get(self.event_type, f"0x{self.event_type:08x}")

    def digest(self, algorithm: str) -> bytes | None:
        for name, value in self.digests:
            if name == algorithm:
                return value
        return None

    @property
    def description(self) -> str:
        return describe(self.event_type, self.data)


@dataclass(frozen=True)
class MeasurementLog:
    algorithms: tuple[str, ...]  # from the Spec ID header, in its order
    events: tuple[LogEvent, ...]  # every event after the header


@dataclass(frozen=True)
class RemReplay:
    """One REM: the token's value, the log's replay of it, and the events behind it."""

    index: int  # 0..3
    token_value: bytes
    replayed: bytes | None  # None: the log cannot be replayed for this REM
    events: tuple[LogEvent, ...]
    problem: str | None = None

    @property
    def explained(self) -> bool:
        return self.replayed is not None and hmac.compare_digest(self.replayed, self.token_value)


def parse_event_log(data: bytes) -> MeasurementLog:
    """Read a TCG2 crypto-agile event log; :class:`MeasurementLogError` says what is wrong."""
    reader = _Reader(data)
    reader.u32("the first event's register index")
    first_type = reader.u32("the first event's type")
    reader.take(20, "the first event's SHA-1 digest")
    header = reader.take(reader.u32("the first event's size"), "the Spec ID event")
    if first_type != EV_NO_ACTION or not header.startswith(SPEC_ID_SIGNATURE):
        raise MeasurementLogError(
            'not a TCG2 crypto-agile event log: it does not start with a "Spec ID Event03" '
            "EV_NO_ACTION event (is this the CCEL log, /sys/firmware/acpi/tables/data/CCEL?)"
        )
    sizes = _spec_id_algorithms(header)
    events: list[LogEvent] = []
    while reader.remaining() >= 8 and not _padding(reader.peek(8)):
        if len(events) >= MAX_EVENTS:
            raise MeasurementLogError(f"more than {MAX_EVENTS} events; refusing the log")
        start = reader.offset
        where = f"event {len(events) + 1} (offset {start})"
        mr_index = reader.u32(f"{where}: register index")
        event_type = reader.u32(f"{where}: type")
        count = reader.u32(f"{where}: digest count")
        if count > len(sizes):
            raise MeasurementLogError(
                f"{where}: {count} digests, but the header declares {len(sizes)} algorithms"
            )
        digests = []
        for _ in range(count):
            alg_id = reader.u16(f"{where}: digest algorithm")
            if alg_id not in sizes:
                raise MeasurementLogError(
                    f"{where}: "
                    f"digest algorithm 0x{alg_id:04x} is not declared in the Spec ID header"
                )
            digest = reader.take(sizes[alg_id], f"{where}: digest")
            digests.append((TCG_ALGORITHMS.get(alg_id, f"0x{alg_id:04x}"), digest))
        event_data = reader.take(reader.u32(f"{where}: data size"), f"{where}: data")
        events.append(
            LogEvent(
                offset=start,
                mr_index=mr_index,
                event_type=event_type,
                digests=tuple(digests),
                data=event_data,
            )
        )
    algorithms = tuple(TCG_ALGORITHMS.get(a, f"0x{a:04x}") for a in sizes)
    return MeasurementLog(algorithms=algorithms, events=tuple(events))


def replay(
    log: MeasurementLog, *, token_algorithm: str, rems: Sequence[bytes]
) -> tuple[RemReplay, ...]:
    """Each REM replayed from the log (``REM = H(REM || digest)``), beside the token's value.

    ``token_algorithm`` is the token's realm hash algorithm (``sha-256``, ``sha-384``,
    ``sha-512``). Events of register 0 (the RIM) and ``EV_NO_ACTION`` events extend nothing.
    """
    algorithm = TOKEN_ALGORITHMS.get(token_algorithm)
    if algorithm is None:
        raise MeasurementLogError(
            f"the token's hash algorithm {token_algorithm!r} is not one "
            f"of {', '.join(TOKEN_ALGORITHMS)}"
        )
    size = hashlib.new(algorithm).digest_size
    results = []
    for index in range(REM_COUNT):
        token_value = rems[index] if index < len(rems) else b""
        events = tuple(e for e in log.events if e.mr_index == index + 1)
        results.append(
            _replay_one(index, token_value, events=events, algorithm=algorithm, size=size)
        )
    return tuple(results)


def stray_events(log: MeasurementLog) -> tuple[LogEvent, ...]:
    """Events naming a register a Realm does not have (not 0 to 4): the log is not a Realm's."""
    return tuple(e for e in log.events if not 0 <= e.mr_index <= REM_COUNT)


def describe(event_type: int, data: bytes) -> str:
    """A short human description of an event's data (never raises on odd data)."""
    if event_type == 0x4 and len(data) == 4:
        return "separator" if data in (bytes(4), b"\xff" * 4) else "separator (error value)"
    if event_type in _VARIABLE_TYPES and len(data) >= 32:
        chars = int.from_bytes(data[16:24], "little")
        name = data[32 : 32 + 2 * chars].decode("utf-16-le", "replace")
        return _clip(f"variable {name}")
    if event_type in _IMAGE_TYPES and len(data) >= 32:
        length = int.from_bytes(data[8:16], "little")
        address = int.from_bytes(data[0:8], "little")
        return f"image of {length} bytes loaded at 0x{address:x}"
    if event_type in _DESCRIBED_BLOB_TYPES and data:
        text = _text(data[1 : 1 + data[0]])
        if text:
            return _clip(text)
    if event_type == 0x6 and len(data) >= 8:  # EV_EVENT_TAG: tag id, size, data
        text = _text(data[8 : 8 + int.from_bytes(data[4:8], "little")])
        tag = int.from_bytes(data[0:4], "little")
        return _clip(f"tag 0x{tag:08x}" + (f": {text}" if text else ""))
    text = _text(data)
    return _clip(text) if text else f"{len(data)} bytes of data"


# --- helpers -------------------------------------------------------------------------------------


def _replay_one(
    index: int, token_value: bytes, *, events: tuple[LogEvent, ...], algorithm: str, size: int
) -> RemReplay:
    def unexplained(problem: str) -> RemReplay:
        return RemReplay(
            index=index, token_value=token_value, replayed=None, events=events, problem=problem
        )

    if len(token_value) != size:
        return unexplained(
            f"the token's REM{index} is {len(token_value)} bytes, a {algorithm} REM is {size}"
        )
    value = bytes(size)
    for event in events:
        if event.event_type == EV_NO_ACTION:
            continue
        digest = event.digest(algorithm)
        if digest is None:
            return unexplained(
                f"the event at offset {event.offset} has no {algorithm} digest "
                f"(it has {', '.join(n for n, _ in event.digests) or 'none'})"
            )
        value = hashlib.new(algorithm, value + digest).digest()
    return RemReplay(index=index, token_value=token_value, replayed=value, events=events)


def _spec_id_algorithms(header: bytes) -> dict[int, int]:
    # signature[16], platformClass u32, versions u8*3, uintnSize u8, count u32, (id u16, size u16)*
    reader = _Reader(header)
    reader.take(16 + 4 + 4, "the Spec ID header")
    count = reader.u32("the Spec ID algorithm count")
    if not 1 <= count <= 16:
        raise MeasurementLogError(
            f"the Spec ID header declares {count} algorithms; expected 1 to 16"
        )
    sizes: dict[int, int] = {}
    for _ in range(count):
        alg_id = reader.u16("a Spec ID algorithm")
        size = reader.u16("a Spec ID digest size")
        if not 1 <= size <= 64:
            raise MeasurementLogError(
                f"the Spec ID header gives algorithm 0x{alg_id:04x} a {size}-byte digest; "
                "expected 1 to 64"
            )
        sizes[alg_id] = size
    return sizes


def _padding(header: bytes) -> bool:
    return header in (b"\xff" * 8, bytes(8))


def _text(data: bytes) -> str | None:
    stripped = data.rstrip(b"\0")
    if stripped and all(32 <= b < 127 or b in (9, 10, 13) for b in stripped):
        return stripped.decode("ascii").strip()
    if len(stripped) % 2:
        stripped += b"\0"
    try:
        text = stripped.decode("utf-16-le").rstrip("\0")
    except UnicodeDecodeError:
        return None
    if text and all(ch.isprintable() and ord(ch) < 0x2000 for ch in text):
        return text
    return None


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_DESCRIPTION else text[: _MAX_DESCRIPTION - 3] + "..."


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def remaining(self) -> int:
        return len(self.data) - self.offset

    def peek(self, size: int) -> bytes:
        return self.data[self.offset : self.offset + size]

    def take(self, size: int, what: str) -> bytes:
        if size > self.remaining():
            raise MeasurementLogError(
                f"the log ends inside {what} "
                f"(at offset {self.offset}: {size} bytes needed, {self.remaining()} left)"
            )
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def u16(self, what: str) -> int:
        return int.from_bytes(self.take(2, what), "little")

    def u32(self, what: str) -> int:
        return int.from_bytes(self.take(4, what), "little")
