"""The Realms the realm lane creates, and how the launcher's console lines are read.

Four Realms, all in one boot of the emulated CCA host (``conftest.py``): SHA-256 and SHA-512,
each with an all-zero and a non-zero personalization value. Their RAM sizes and IPA widths
differ on purpose, so the RIM replay meets a single 2 MiB RTT entry, a 2 MiB block followed by
4 KiB pages, and a 1 GiB block, at 40 and at 48 IPA bits. The challenges are fixed, so a
failure is reproducible (the tokens' ECDSA signatures still differ from boot to boot).

The launcher (``launcher.c``) prints, per Realm::

    REALM-BEGIN: NAME
    REALM-LAUNCH: name=NAME algo=sha256 ipa_bits=40 ram_base=0x40000000 ... brps=5 wrps=3 ...
    REALM-PAYLOAD-SHA256: <the payload's SHA-256>
    REALM-RPV: <64 bytes hex>           REALM-CHALLENGE: <64 bytes hex>
    REALM-CONFIG: <status, ipa_width, hash_algo: 3 little-endian u64>
    REALM-RSI-VERSION: <status, lower, higher: 3 little-endian u64>
    REALM-RIM: <status u64, then the 64-byte measurement slot of RSI_MEASUREMENT_READ(0)>
    REALM-TOKEN: <the token's bytes hex>
    REALM-END: NAME ok|failed

and ``REALM-FAIL: ...`` for whatever went wrong on the way.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Literal

Algo = Literal["sha256", "sha512"]

LANE_DONE = "REALM-LANE-DONE"
LANE_FAIL = "REALM-LANE-FAIL"
RSI_SUCCESS = 0
RSI_ABI_1_0 = 1 << 16
RSI_HASH_ALGO = {"sha256": 0, "sha512": 1}  # RsiHashAlgorithm
DIGEST_BYTES = {"sha256": 32, "sha512": 64}
MIB = 2**20


@dataclass(frozen=True)
class RealmCase:
    """One Realm's launch inputs, as the launcher reads them from /etc/realms."""

    name: str
    algo: Algo
    ipa_bits: int
    ram_size: int
    rpv: bytes

    @property
    def challenge(self) -> bytes:
        return hashlib.sha512(b"kubevirt-cca realm lane challenge " + self.name.encode()).digest()

    def realms_line(self) -> str:
        return (
            f"{self.name} {self.algo} {self.ipa_bits} {self.ram_size:#x} "
            f"{self.rpv.hex()} {self.challenge.hex()}\n"
        )


CASES = (
    RealmCase(name="sha256-zero-rpv", algo="sha256", ipa_bits=40, ram_size=2 * MIB, rpv=bytes(64)),
    RealmCase(
        name="sha256-rpv",
        algo="sha256",
        ipa_bits=40,
        ram_size=3 * MIB,
        rpv=hashlib.sha512(b"kubevirt-cca realm lane personalization value").digest(),
    ),
    RealmCase(
        name="sha512-zero-rpv", algo="sha512", ipa_bits=48, ram_size=2 * MIB + 4096, rpv=bytes(64)
    ),
    RealmCase(
        name="sha512-rpv",
        algo="sha512",
        ipa_bits=48,
        ram_size=1024 * MIB + 2 * MIB,
        rpv=bytes(range(1, 65)),
    ),
)


@dataclass
class RealmRun:
    """What the launcher printed for one Realm."""

    name: str
    ok: bool = False
    launch: dict[str, str] = field(default_factory=dict)
    payload_sha256: bytes = b""
    rpv: bytes = b""
    challenge: bytes = b""
    config: tuple[int, ...] = ()
    version: tuple[int, ...] = ()
    rim_status: int | None = None
    rim_slot: bytes = b""
    token: bytes | None = None
    failures: list[str] = field(default_factory=list)


_LINE = re.compile(r"^(REALM-[A-Z0-9-]+): ?(.*)$")


def parse_console(console: str) -> dict[str, RealmRun]:
    """Every Realm's lines of a host console log, by name."""
    runs: dict[str, RealmRun] = {}
    current: RealmRun | None = None
    for raw in console.splitlines():
        match = _LINE.match(raw.strip())
        if match is None:
            continue
        key, value = match.groups()
        if key == "REALM-BEGIN":
            current = runs.setdefault(value, RealmRun(name=value))
            continue
        if current is None:
            continue
        if key == "REALM-END":
            current.ok = value == f"{current.name} ok"
            current = None
        elif key == "REALM-LAUNCH":
            current.launch = dict(item.split("=", 1) for item in value.split() if "=" in item)
        elif key == "REALM-PAYLOAD-SHA256":
            current.payload_sha256 = bytes.fromhex(value)
        elif key == "REALM-RPV":
            current.rpv = bytes.fromhex(value)
        elif key == "REALM-CHALLENGE":
            current.challenge = bytes.fromhex(value)
        elif key == "REALM-CONFIG":
            current.config = _words(value)
        elif key == "REALM-RSI-VERSION":
            current.version = _words(value)
        elif key == "REALM-RIM":
            raw_rim = bytes.fromhex(value)
            current.rim_status = int.from_bytes(raw_rim[:8], "little")
            current.rim_slot = raw_rim[8:]
        elif key == "REALM-TOKEN":
            current.token = bytes.fromhex(value)
        elif key in ("REALM-FAIL", "REALM-ERROR"):
            current.failures.append(f"{key}: {value}")
    return runs


def _words(text: str) -> tuple[int, ...]:
    raw = bytes.fromhex(text)
    return tuple(int.from_bytes(raw[i : i + 8], "little") for i in range(0, len(raw), 8))
