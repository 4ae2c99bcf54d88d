"""A node profile: what an admin publishes per node type so that a VM owner can compute the
RIM of a Realm without the node's files.

The owner lacks three inputs of ``attest reference``: the host profile, the exact CCA firmware
inside the node's virt-launcher image, and the DTB QEMU builds. A node profile carries all three,
in a form small enough for a ConfigMap: the host profile's keys; the firmware as the digest of
each 4 KiB granule in the profile's algorithm (what the RMM measures; runs of equal granules,
such as a flash image's padding, written once with a count) plus the file's SHA-256 and size;
and one DTB per VM shape (vCPUs, guest memory), dumped by the admin with QEMU's
``-machine dumpdtb``. JSON, schema 1::

    {"kind": "CCANodeProfile", "schemaVersion": 1, "nodeType": "...",
     "hostProfile": {...}, "firmware": {"bytes": N, "sha256": HEX, "granules": [[HEX, COUNT]]},
     "dtbs": [{"cpus": 2, "memory": 2147483648, "dtb": BASE64}]}

:func:`node_profile_json` writes one, :func:`parse_node_profile` reads one back (every problem
names its field), :func:`select_dtb` picks the DTB of a VM's shape. Pure: bytes and values in.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from kubevirt_cca.core.attestation.profile import HostProfile, parse_profile, profile_data
from kubevirt_cca.core.attestation.reference import (
    DIGEST_BYTES,
    GRANULE,
    VIRT_FLASH_BANK_BYTES,
    Image,
    granules,
)
from kubevirt_cca.errors import ReferenceValueError, Violation

KIND: Final = "CCANodeProfile"
SCHEMA_VERSION: Final = 1
KEYS: Final = ("kind", "schemaVersion", "nodeType", "hostProfile", "firmware", "dtbs")
MAX_DTB_BYTES: Final = 2 * 2**20  # QEMU's own limit for a DTB
MAX_SHAPES: Final = 256


@dataclass(frozen=True)
class DtbShape:
    """The DTB QEMU builds for a VM of ``cpus`` vCPUs and ``memory`` bytes of guest memory."""

    cpus: int
    memory: int
    dtb: bytes


@dataclass(frozen=True)
class NodeProfile:
    node_type: str | None
    profile: HostProfile
    firmware: Image  # pre-hashed: granule digests in the profile's algorithm
    firmware_sha256: bytes
    dtbs: tuple[DtbShape, ...]


def node_profile_json(
    *,
    profile: HostProfile,
    firmware: bytes,
    dtbs: Sequence[DtbShape],
    node_type: str | None = None,
) -> dict[str, Any]:
    """The node profile an admin publishes (``attest node-profile``)."""
    problems = []
    if not firmware:
        problems.append(Violation("--firmware", "the file is empty"))
    elif len(firmware) > VIRT_FLASH_BANK_BYTES:
        problems.append(
            Violation(
                "--firmware",
                f"is {len(firmware)} bytes; "
                f"the virt machine's flash bank holds {VIRT_FLASH_BANK_BYTES}",
            )
        )
    seen: set[tuple[int, int]] = set()
    for shape in dtbs:
        if (shape.cpus, shape.memory) in seen:
            problems.append(
                Violation("--shape", f"{shape.cpus} vCPUs and {shape.memory} bytes are given twice")
            )
        seen.add((shape.cpus, shape.memory))
        problems.extend(_shape_problems(shape, "--shape"))
    if problems:
        raise ReferenceValueError(problems)
    runs: list[list[Any]] = []
    for _, granule in granules(Image(name="firmware", ipa=0, content=firmware)):
        digest = hashlib.new(profile.measurement_algo, granule).hexdigest()
        if runs and runs[-1][0] == digest:
            runs[-1][1] += 1
        else:
            runs.append([digest, 1])
    out: dict[str, Any] = {"kind": KIND, "schemaVersion": SCHEMA_VERSION}
    if node_type is not None:
        out["nodeType"] = node_type
    out["hostProfile"] = profile_data(profile)
    out["firmware"] = {
        "bytes": len(firmware),
        "sha256": hashlib.sha256(firmware).hexdigest(),
        "granules": runs,
    }
    out["dtbs"] = [
        {"cpus": s.cpus, "memory": s.memory, "dtb": base64.b64encode(s.dtb).decode("ascii")}
        for s in sorted(dtbs, key=lambda s: (s.cpus, s.memory))
    ]
    return out


def parse_node_profile(data: Any) -> NodeProfile:
    """A :class:`NodeProfile`, or :class:`ReferenceValueError` naming every bad field."""
    if not isinstance(data, Mapping) or data.get("kind") != KIND:
        raise ReferenceValueError(
            (Violation("kind", f"expected a {KIND} object ('attest node-profile' writes one)"),)
        )
    problems: list[Violation] = [
        Violation(str(key), "unknown key; expected one of " + ", ".join(KEYS))
        for key in data
        if key not in KEYS
    ]
    if data.get("schemaVersion") != SCHEMA_VERSION:
        problems.append(
            Violation(
                "schemaVersion", f"expected {SCHEMA_VERSION}, got {data.get('schemaVersion')!r}"
            )
        )
    node_type = data.get("nodeType")
    if node_type is not None and not isinstance(node_type, str):
        problems.append(Violation("nodeType", f"expected text, got {node_type!r}"))
    try:
        profile = parse_profile(data.get("hostProfile"))
    except ReferenceValueError as exc:
        problems.extend(
            Violation(v.field.replace("profile", "hostProfile", 1), v.message)
            for v in exc.violations
        )
        raise ReferenceValueError(problems) from exc
    firmware, sha256 = _firmware(data.get("firmware"), profile, problems)
    dtbs = _dtbs(data.get("dtbs"), problems)
    if problems or firmware is None:
        raise ReferenceValueError(problems)
    return NodeProfile(
        node_type=node_type, profile=profile, firmware=firmware, firmware_sha256=sha256, dtbs=dtbs
    )


def select_dtb(node: NodeProfile, *, cpus: int, memory: int) -> bytes:
    """The published DTB of a VM with ``cpus`` vCPUs and ``memory`` bytes, or why there is none."""
    for shape in node.dtbs:
        if (shape.cpus, shape.memory) == (cpus, memory):
            return shape.dtb
    offered = ", ".join(f"{s.cpus} vCPUs with {s.memory} bytes" for s in node.dtbs) or "none"
    raise ReferenceValueError(
        (
            Violation(
                "--node-profile",
                f"has no DTB for {cpus} vCPUs with {memory} bytes of memory (it has: {offered}); "
                "ask the node's admin to publish that shape, or give --dtb",
            ),
        )
    )


# --- reading -------------------------------------------------------------------------------------


def _firmware(
    value: Any, profile: HostProfile, problems: list[Violation]
) -> tuple[Image | None, bytes]:
    if not isinstance(value, Mapping) or set(value) != {"bytes", "sha256", "granules"}:
        problems.append(Violation("firmware", "expected an object with bytes, sha256, granules"))
        return None, b""
    size, runs = value["bytes"], value["granules"]
    if type(size) is not int or not 0 < size <= VIRT_FLASH_BANK_BYTES:
        problems.append(
            Violation("firmware.bytes", f"expected 1 to {VIRT_FLASH_BANK_BYTES}, got {size!r}")
        )
        return None, b""
    sha256 = _hex(value["sha256"], 32, "firmware.sha256", problems)
    width = DIGEST_BYTES[profile.measurement_algo]
    expected = -(-size // GRANULE)
    digests: list[bytes] = []
    if not isinstance(runs, list):
        runs = [None]
    for index, run in enumerate(runs):
        where = f"firmware.granules[{index}]"
        if (
            not isinstance(run, list)
            or len(run) != 2
            or type(run[1]) is not int
            or not 0 < run[1] <= expected - len(digests)
        ):
            problems.append(
                Violation(where, f"expected [HEX, COUNT] with 1 to {expected} granules in all")
            )
            return None, b""
        digest = _hex(run[0], width, f"{where} ({profile.measurement_algo})", problems)
        digests.extend([digest] * run[1])
    if len(digests) != expected:
        problems.append(
            Violation(
                "firmware.granules",
                f"cover {len(digests)} granules; {size} bytes are {expected} granules of 4 KiB",
            )
        )
        return None, b""
    image = Image(name="firmware", ipa=0, content=b"", granule_digests=tuple(digests), length=size)
    return image, sha256


def _dtbs(value: Any, problems: list[Violation]) -> tuple[DtbShape, ...]:
    if not isinstance(value, list) or len(value) > MAX_SHAPES:
        problems.append(Violation("dtbs", f"expected a list of at most {MAX_SHAPES} DTB shapes"))
        return ()
    shapes: list[DtbShape] = []
    for index, entry in enumerate(value):
        where = f"dtbs[{index}]"
        if not isinstance(entry, Mapping) or set(entry) != {"cpus", "memory", "dtb"}:
            problems.append(Violation(where, "expected an object with cpus, memory, dtb"))
            continue
        try:
            dtb = base64.b64decode(str(entry["dtb"]).encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            problems.append(Violation(f"{where}.dtb", "expected standard base64"))
            continue
        shape = DtbShape(cpus=entry["cpus"], memory=entry["memory"], dtb=dtb)
        problems.extend(_shape_problems(shape, where))
        shapes.append(shape)
    return tuple(shapes)


def _shape_problems(shape: DtbShape, where: str) -> list[Violation]:
    problems = []
    if type(shape.cpus) is not int or shape.cpus < 1:
        problems.append(
            Violation(f"{where} cpus", f"expected a positive integer, got {shape.cpus!r}")
        )
    if type(shape.memory) is not int or shape.memory <= 0 or shape.memory % GRANULE:
        problems.append(
            Violation(
                f"{where} memory", f"expected a positive multiple of 4Ki, got {shape.memory!r}"
            )
        )
    if not shape.dtb or len(shape.dtb) > MAX_DTB_BYTES:
        problems.append(Violation(f"{where} dtb", f"expected 1 to {MAX_DTB_BYTES} bytes"))
    return problems


def _hex(value: Any, size: int, where: str, problems: list[Violation]) -> bytes:
    try:
        raw = bytes.fromhex(value) if isinstance(value, str) else None
    except ValueError:
        raw = None
    if raw is None or len(raw) != size:
        problems.append(Violation(where, f"expected {size} bytes of hex, got {value!r}"))
        return bytes(size)
    return raw


def describe(node: NodeProfile) -> str:
    """One line for people: which node type and firmware the profile stands for."""
    name = node.node_type or "an unnamed node type"
    return f"node profile of {name}, firmware sha256 {node.firmware_sha256.hex()}"
