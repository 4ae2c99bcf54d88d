"""Synthetic Realm measurement logs (TCG2 crypto-agile, as a CCEL area holds them).

Built field by field from the TCG PC Client layout, independently of the parser under test,
with the REMs such a log should produce computed here by folding ``H(REM || digest)``.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass

ALG_IDS = {"sha1": 0x0004, "sha256": 0x000B, "sha384": 0x000C, "sha512": 0x000D}
EV_NO_ACTION = 0x3
EV_SEPARATOR = 0x4
EV_EFI_ACTION = 0x80000007
EV_EFI_PLATFORM_FIRMWARE_BLOB2 = 0x8000000A
EV_EVENT_TAG = 0x6
EV_EFI_VARIABLE_BOOT = 0x80000002
EV_EFI_BOOT_SERVICES_APPLICATION = 0x80000003


@dataclass(frozen=True)
class Event:
    mr_index: int  # 1..4: REM0..REM3
    event_type: int
    data: bytes
    measured: bytes | None = None  # what is hashed for the digest (default: the data)


def spec_id_event(algorithms: Sequence[str]) -> bytes:
    body = b"Spec ID Event03\0" + struct.pack("<IBBBB", 0, 0, 2, 0, 2)
    body += struct.pack("<I", len(algorithms))
    for name in algorithms:
        body += struct.pack("<HH", ALG_IDS[name], hashlib.new(name).digest_size)
    body += b"\0"  # vendorInfoSize
    return struct.pack("<II", 0, EV_NO_ACTION) + bytes(20) + struct.pack("<I", len(body)) + body


def event2(event: Event, algorithms: Sequence[str]) -> bytes:
    out = struct.pack("<III", event.mr_index, event.event_type, len(algorithms))
    for name in algorithms:
        out += struct.pack("<H", ALG_IDS[name])
        out += hashlib.new(
            name, event.measured if event.measured is not None else event.data
        ).digest()
    return out + struct.pack("<I", len(event.data)) + event.data


def build_log(
    events: Sequence[Event],
    *,
    algorithms: Sequence[str] = ("sha256", "sha512"),
    area: int | None = None,
    fill: bytes = b"\xff",
) -> bytes:
    """The log; with ``area`` padded to that many bytes with ``fill`` (a CCEL log area)."""
    data = spec_id_event(algorithms) + b"".join(event2(e, algorithms) for e in events)
    if area is not None:
        data += fill * (area - len(data))
    return data


def expected_rems(events: Sequence[Event], algorithm: str) -> tuple[bytes, ...]:
    size = hashlib.new(algorithm).digest_size
    rems = [bytes(size)] * 4
    for event in events:
        if event.event_type == EV_NO_ACTION:
            continue
        digest = hashlib.new(
            algorithm, event.measured if event.measured is not None else event.data
        ).digest()
        rems[event.mr_index - 1] = hashlib.new(
            algorithm, rems[event.mr_index - 1] + digest
        ).digest()
    return tuple(rems)


def tagged(tag: int, text: bytes) -> bytes:
    return struct.pack("<II", tag, len(text)) + text


def blob2(description: bytes, base: int, length: int) -> bytes:
    return bytes([len(description)]) + description + struct.pack("<QQ", base, length)


def variable(name: str, value: bytes) -> bytes:
    encoded = name.encode("utf-16-le")
    return bytes(range(16)) + struct.pack("<QQ", len(name), len(value)) + encoded + value


# A boot as UEFI firmware logs it: firmware config into REM0, the boot loader and kernel into
# REM1, the kernel command line and initrd into REM2, nothing into REM3.
BOOT_EVENTS = (
    Event(
        1,
        EV_EFI_PLATFORM_FIRMWARE_BLOB2,
        blob2(b"QEMU FV", 0x0, 0x200000),
        measured=b"firmware volume",
    ),
    Event(1, EV_EFI_VARIABLE_BOOT, variable("BootOrder", b"\x00\x00"), measured=b"\x00\x00"),
    Event(1, EV_SEPARATOR, bytes(4)),
    Event(2, EV_EFI_ACTION, b"Calling EFI Application from Boot Option"),
    Event(
        2,
        EV_EFI_BOOT_SERVICES_APPLICATION,
        struct.pack("<QQQQ", 0x7F000000, 0x1400000, 0, 0),
        measured=b"kernel image",
    ),
    Event(3, EV_EVENT_TAG, tagged(0x8F3B22ED, b"Linux initrd\0"), measured=b"initrd"),
    Event(
        3,
        EV_EVENT_TAG,
        tagged(0x8F3B22EC, b"LOADED_IMAGE::LoadOptions\0"),
        measured=b"console=ttyAMA0",
    ),
    Event(0, EV_NO_ACTION, b"an informational event, extends nothing"),
)
