"""The Realm Initial Measurement a VM should have, computed from its launch inputs.

The RMM (Arm DEN0137) builds the RIM while the VMM creates the Realm, and this module replays
the same operations:

- ``realm-create`` (RMI_REALM_CREATE): the RIM starts as the hash of a 4 KiB ``RmiRealmParams``
  page, zero except ``flags0`` (bit 0 LPA2, bit 1 SVE, bit 2 PMU; RMM 2.0 also bit 3 DA and
  bits 7-8 the MEC policy, the whole word measured) at 0x0, ``s2sz`` at 0x8,
  ``sve_vl`` (VQ - 1) at 0x10, ``num_bps`` (count - 1) at 0x18, ``num_wps`` (count - 1) at
  0x20, ``pmu_num_ctrs`` at 0x28 and ``hash_algo`` at 0x30. The personalization value is not
  part of it.
- every later step hashes a 256-byte measurement descriptor holding the current RIM (in a
  64-byte slot, zero-padded) at 0x10: ``ripas`` (RMI_RTT_INIT_RIPAS, RMM 1.0 only: type 2,
  ``base`` at 0x50, ``top`` at 0x58), ``data`` (RMI_DATA_CREATE, one per 4 KiB granule: type 0,
  ``ipa`` at 0x50, flags at 0x58 with bit 0 "content measured", the granule's hash at 0x60),
  ``rec`` (RMI_REC_CREATE: type 1, at 0x50 the hash of a 4 KiB ``RmiRecParams`` page zero
  except ``flags`` at 0x0, ``pc`` at 0x200, ``gprs[0..7]`` at 0x300).

The order is the one QEMU and KVM use today: create, RIPAS of all RAM, the images in
ascending address order, the runnable REC of vCPU 0. :func:`qemu_virt_layout` places the images
the way QEMU's ``virt`` machine does; :func:`payload_layout` places one raw bare-metal image at
the start of RAM (the launcher of ``tests/realm``, whose Realms a real RMM 1.0 measures and
this module must predict). Pure: bytes in, digests out.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from kubevirt_cca.core.attestation.profile import HostProfile, MeasurementAlgo
from kubevirt_cca.errors import ReferenceValueError, Violation

GRANULE: Final = 0x1000
MEASUREMENT_SLOT: Final = 64
DESCRIPTOR_BYTES: Final = 0x100
PARAMS_PAGE_BYTES: Final = 0x1000
DIGEST_BYTES: Final = {"sha256": 32, "sha384": 48, "sha512": 64}
RMI_HASH_ALGO: Final = {"sha256": 0, "sha512": 1, "sha384": 2}  # sha384: RMM 2.0 only
REALM_FLAG_LPA2: Final = 1 << 0
REALM_FLAG_SVE: Final = 1 << 1
REALM_FLAG_PMU: Final = 1 << 2
REALM_FLAG_DA: Final = 1 << 3  # RMM 2.0
REALM_FLAG_MEC_POLICY_SHIFT: Final = 7  # RMM 2.0: two bits, 0 shared, 1 private
RMI_MEC_POLICY: Final = {"shared": 0, "private": 1}
REC_FLAG_RUNNABLE: Final = 1 << 0
DATA_FLAG_MEASURED: Final = 1 << 0
DESC_DATA: Final = 0
DESC_REC: Final = 1
DESC_RIPAS: Final = 2
REC_GPRS: Final = 8

# QEMU's ``virt`` machine (hw/arm/virt.c): flash at 0 (two 64 MiB banks, the firmware in the
# first), RAM from 1 GiB.
VIRT_FLASH_BANK_BYTES: Final = 64 * 2**20
VIRT_RAM_BASE: Final = 0x4000_0000
VIRT_INITRD_MAX_OFFSET: Final = 128 * 2**20
VIRT_DTB_ALIGN: Final = 2 * 2**20
GZIP_MAGIC: Final = b"\x1f\x8b"

StepKind = Literal["realm-create", "ripas", "data", "rec"]


@dataclass(frozen=True)
class Image:
    """Bytes the VMM copies into Realm memory at ``ipa`` (measured, granule by granule)."""

    name: str  # "firmware", "kernel", "initrd", "dtb", "payload"
    ipa: int
    content: bytes
    # Pre-hashed instead (a node profile's firmware): the digest of each 4 KiB granule in the
    # profile's algorithm, and the image's size; ``content`` is then empty.
    granule_digests: tuple[bytes, ...] | None = None
    length: int | None = None

    @property
    def size(self) -> int:
        return len(self.content) if self.length is None else self.length


@dataclass(frozen=True)
class RealmLayout:
    """What the VMM puts into a new Realm: RAM, the images and vCPU 0's start state."""

    ram_base: int
    ram_size: int
    images: tuple[Image, ...]
    pc: int
    gprs: tuple[int, ...]  # x0..x7


@dataclass(frozen=True)
class Step:
    """One operation measured into the RIM, with the RIM after it (digest bytes, no padding)."""

    kind: StepKind
    rim: bytes
    base: int | None = None  # ripas
    top: int | None = None  # ripas
    ipa: int | None = None  # data
    content_digest: bytes | None = None  # data
    pc: int | None = None  # rec
    gprs: tuple[int, ...] | None = None  # rec


@dataclass(frozen=True)
class Reference:
    """A computed RIM: the digest, its algorithm, and (when asked) every step."""

    rim: bytes
    measurement_algo: MeasurementAlgo
    steps: tuple[Step, ...] = ()


def qemu_virt_layout(
    *,
    memory: int,
    dtb: bytes,
    firmware: bytes | Image | None = None,
    kernel: bytes | None = None,
    initrd: bytes | None = None,
) -> RealmLayout:
    """Where QEMU's ``virt`` machine puts each image, and vCPU 0's entry state.

    Firmware boot: the firmware at 0, the DTB at the start of RAM, pc 0, x0 0 (the kernel and
    initrd then come through fw_cfg and are measured by the firmware into a REM, not the RIM).
    Direct kernel boot: the kernel at the start of RAM, the initrd at
    max(RAM + min(RAM size / 2, 128 MiB), kernel end) aligned to 4 KiB, the DTB after it aligned
    to 2 MiB, pc at the kernel, x0 the DTB's address.
    """
    problems: list[Violation] = []
    if (firmware is None) == (kernel is None):
        raise ReferenceValueError((Violation("--firmware/--kernel", "give exactly one"),))
    if initrd is not None and kernel is None:
        problems.append(
            Violation(
                "--initrd",
                "needs --kernel (with --firmware, "
                "the initrd comes through fw_cfg and is measured into a REM)",
            )
        )
    if memory <= 0 or memory % GRANULE:
        problems.append(
            Violation("--memory", f"expected a positive multiple of 4Ki, got {memory} bytes")
        )
    for name, blob in (
        ("--dtb", dtb),
        ("--firmware", firmware if isinstance(firmware, bytes) else None),
        ("--kernel", kernel),
        ("--initrd", initrd),
    ):
        if blob is not None and not blob:
            problems.append(Violation(name, "the file is empty"))
    if kernel is not None and kernel.startswith(GZIP_MAGIC):
        problems.append(
            Violation(
                "--kernel",
                "is gzip-compressed; QEMU loads the decompressed Image, give that "
                "(gunzip it first)",
            )
        )
    firmware_size = firmware.size if isinstance(firmware, Image) else len(firmware or b"")
    if firmware_size > VIRT_FLASH_BANK_BYTES:
        problems.append(
            Violation(
                "--firmware",
                f"is {firmware_size} bytes; "
                f"the virt machine's flash bank holds {VIRT_FLASH_BANK_BYTES}",
            )
        )
    if problems:
        raise ReferenceValueError(problems)

    ram_top = VIRT_RAM_BASE + memory
    images: tuple[Image, ...]
    if firmware is not None:
        images = (
            firmware if isinstance(firmware, Image) else Image("firmware", 0, firmware),
            Image(name="dtb", ipa=VIRT_RAM_BASE, content=dtb),
        )
        pc, x0 = 0, 0
    else:
        assert kernel is not None
        kernel_end = VIRT_RAM_BASE + len(kernel)
        initrd_at = _align_up(
            max(VIRT_RAM_BASE + min(memory // 2, VIRT_INITRD_MAX_OFFSET), kernel_end), GRANULE
        )
        initrd_end = initrd_at + (len(initrd) if initrd is not None else 0)
        dtb_at = _align_up(initrd_end, VIRT_DTB_ALIGN)
        images = (Image(name="kernel", ipa=VIRT_RAM_BASE, content=kernel),)
        if initrd is not None:
            images += (Image(name="initrd", ipa=initrd_at, content=initrd),)
        images += (Image(name="dtb", ipa=dtb_at, content=dtb),)
        pc, x0 = VIRT_RAM_BASE, dtb_at
    for image in images:
        end = image.ipa + image.size
        if image.ipa >= VIRT_RAM_BASE and end > ram_top:
            raise ReferenceValueError(
                (
                    Violation(
                        "--memory",
                        f"{memory} bytes of RAM end at {ram_top:#x}, "
                        f"but the {image.name} would end at {end:#x}; give the VM more memory",
                    ),
                )
            )
    return RealmLayout(
        ram_base=VIRT_RAM_BASE,
        ram_size=memory,
        images=images,
        pc=pc,
        gprs=(x0, 0, 0, 0, 0, 0, 0, 0),
    )


def payload_layout(*, memory: int, payload: bytes) -> RealmLayout:
    """One raw bare-metal image at the start of RAM, entered at its first byte, x0..x7 zero.

    No DTB, no firmware: what a minimal VMM (``tests/realm/launcher.c``) populates. RAM starts
    where the ``virt`` machine's does.
    """
    problems: list[Violation] = []
    if memory <= 0 or memory % GRANULE:
        problems.append(
            Violation("--memory", f"expected a positive multiple of 4Ki, got {memory} bytes")
        )
    if not payload:
        problems.append(Violation("--payload", "the file is empty"))
    elif memory > 0 and len(payload) > memory:
        problems.append(
            Violation(
                "--memory",
                f"{memory} bytes of RAM cannot hold the {len(payload)}-byte payload; "
                "give the VM more memory",
            )
        )
    if problems:
        raise ReferenceValueError(problems)
    return RealmLayout(
        ram_base=VIRT_RAM_BASE,
        ram_size=memory,
        images=(Image(name="payload", ipa=VIRT_RAM_BASE, content=payload),),
        pc=VIRT_RAM_BASE,
        gprs=(0,) * REC_GPRS,
    )


def compute_rim(profile: HostProfile, layout: RealmLayout, *, trace: bool = False) -> Reference:
    """Replay the RMM's RIM extensions for ``layout`` on a host described by ``profile``."""
    _check_fits(profile, layout)
    algo = profile.measurement_algo
    digest_of = _hasher(algo)
    size = DIGEST_BYTES[algo]
    steps: list[Step] = []

    rim = digest_of(realm_params_page(profile))
    if trace:
        steps.append(Step("realm-create", rim[:size]))
    if profile.rmm_version == "1.0":
        for base, top in ripas_ranges(
            layout.ram_base, layout.ram_base + layout.ram_size, ipa_bits=profile.ipa_bits
        ):
            rim = digest_of(ripas_descriptor(rim, base=base, top=top))
            if trace:
                steps.append(Step("ripas", rim[:size], base=base, top=top))
    for image in sorted(layout.images, key=lambda item: item.ipa):
        for ipa, content in _granule_digests(image, digest_of, size):
            rim = digest_of(data_descriptor(rim, ipa=ipa, content_digest=content))
            if trace:
                steps.append(Step("data", rim[:size], ipa=ipa, content_digest=content[:size]))
    rec = digest_of(rec_params_page(layout.pc, layout.gprs))
    rim = digest_of(rec_descriptor(rim, rec))
    if trace:
        steps.append(Step("rec", rim[:size], pc=layout.pc, gprs=layout.gprs))
    return Reference(rim=rim[:size], measurement_algo=algo, steps=tuple(steps))


# --- the RMM's pages and descriptors -------------------------------------------------------------


def realm_params_page(profile: HostProfile) -> bytes:
    """The measured view of ``RmiRealmParams``: 4 KiB, zero but for the measured fields."""
    flags = 0
    if profile.lpa2:
        flags |= REALM_FLAG_LPA2
    sve_vl = 0
    if profile.sve_vector_length is not None:
        flags |= REALM_FLAG_SVE
        sve_vl = profile.sve_vector_length // 128 - 1
    pmu_counters = 0
    if profile.pmu_counters is not None:
        flags |= REALM_FLAG_PMU
        pmu_counters = profile.pmu_counters
    if profile.device_assignment:
        flags |= REALM_FLAG_DA
    flags |= RMI_MEC_POLICY[profile.mec_policy] << REALM_FLAG_MEC_POLICY_SHIFT
    page = bytearray(PARAMS_PAGE_BYTES)
    _put(page, 0x00, flags)
    _put(page, 0x08, profile.ipa_bits)
    _put(page, 0x10, sve_vl)
    _put(page, 0x18, profile.breakpoints - 1)
    _put(page, 0x20, profile.watchpoints - 1)
    _put(page, 0x28, pmu_counters)
    _put(page, 0x30, RMI_HASH_ALGO[profile.measurement_algo])
    return bytes(page)


def rec_params_page(pc: int, gprs: Sequence[int]) -> bytes:
    """The measured view of ``RmiRecParams`` of a runnable REC."""
    page = bytearray(PARAMS_PAGE_BYTES)
    _put(page, 0x000, REC_FLAG_RUNNABLE)
    _put(page, 0x200, pc)
    for index, value in enumerate(gprs):
        _put(page, 0x300 + 8 * index, value)
    return bytes(page)


def data_descriptor(rim: bytes, *, ipa: int, content_digest: bytes) -> bytes:
    desc = _descriptor(DESC_DATA, rim)
    _put(desc, 0x50, ipa)
    _put(desc, 0x58, DATA_FLAG_MEASURED)
    desc[0x60 : 0x60 + len(content_digest)] = content_digest
    return bytes(desc)


def rec_descriptor(rim: bytes, rec_digest: bytes) -> bytes:
    desc = _descriptor(DESC_REC, rim)
    desc[0x50 : 0x50 + len(rec_digest)] = rec_digest
    return bytes(desc)


def ripas_descriptor(rim: bytes, *, base: int, top: int) -> bytes:
    desc = _descriptor(DESC_RIPAS, rim)
    _put(desc, 0x50, base)
    _put(desc, 0x58, top)
    return bytes(desc)


def _granule_digests(
    image: Image, digest_of: Callable[[bytes], bytes], size: int
) -> list[tuple[int, bytes]]:
    """``(ipa, digest)`` of each granule: hashed here, or the image's pre-hashed ones."""
    if image.granule_digests is None:
        return [(ipa, digest_of(granule)) for ipa, granule in granules(image)]
    wrong = {len(digest) for digest in image.granule_digests} - {size}
    if wrong or image.ipa % GRANULE:
        raise ReferenceValueError(
            (Violation(image.name, f"pre-hashed granules must be {size}-byte digests"),)
        )
    return [
        (image.ipa + index * GRANULE, digest.ljust(MEASUREMENT_SLOT, b"\0"))
        for index, digest in enumerate(image.granule_digests)
    ]


def granules(image: Image) -> list[tuple[int, bytes]]:
    """``(ipa, 4 KiB)`` for each granule an image covers, zero-filled around it."""
    start = image.ipa - image.ipa % GRANULE
    padded = bytes(image.ipa - start) + image.content
    padded += bytes(-len(padded) % GRANULE)
    return [
        (start + offset, padded[offset : offset + GRANULE])
        for offset in range(0, len(padded), GRANULE)
    ]


def ripas_ranges(base: int, top: int, *, ipa_bits: int) -> list[tuple[int, int]]:
    """The RTT entries RMI_RTT_INIT_RIPAS covers for ``[base, top)``, one measurement each.

    The RMM measures once per stage-2 table entry it initialises, and KVM maps with the largest
    block each address allows, so the range splits into the largest aligned blocks the
    translation regime has (from the number of levels ``ipa_bits`` needs, with the initial
    level concatenated when it would hold 16 entries or fewer).
    """
    sizes = translation_block_sizes(ipa_bits)
    ranges = []
    cursor = _align_down(base, GRANULE)
    top = _align_up(top, GRANULE)
    while cursor < top:
        block = max(size for size in sizes if cursor % size == 0 and cursor + size <= top)
        ranges.append((cursor, cursor + block))
        cursor += block
    return ranges


def translation_block_sizes(ipa_bits: int) -> tuple[int, ...]:
    """The block sizes a 4 KiB-granule stage-2 table for ``ipa_bits`` offers, largest first."""
    bits_per_level = 9
    table_bits = ipa_bits - 12
    levels = -(-table_bits // bits_per_level)
    if table_bits - bits_per_level * (levels - 1) <= 4:
        levels -= 1  # the initial level is concatenated
    start = 4 - levels
    return tuple(GRANULE << (bits_per_level * (3 - level)) for level in range(start, 4))


# --- output shapes -------------------------------------------------------------------------------


def reference_json(reference: Reference, *, trace: bool) -> dict[str, Any]:
    """``attest reference --output json`` (and what ``attest verify --reference`` reads)."""
    out: dict[str, Any] = {
        "rim": reference.rim.hex(),
        "measurementAlgo": reference.measurement_algo,
    }
    if trace:
        out["steps"] = [_step_json(step) for step in reference.steps]
    return out


def corim_json(reference: Reference, *, tag_id: str) -> dict[str, Any]:
    """A CoMID-style reference value (the JSON shape veraison's tools read for CCA realms)."""
    name = {"sha256": "sha-256", "sha384": "sha-384", "sha512": "sha-512"}[
        reference.measurement_algo
    ]
    encoded = base64.b64encode(reference.rim).decode("ascii")
    return {
        "tag-identity": {"tag-id": tag_id},
        "triples": {
            "reference-triples": [
                [
                    {"class": {"class-id": {"type": "bytes", "value": encoded}}},
                    [{"mkey": "cca.rim", "mval": {"digests": [f"{name};{encoded}"]}}],
                ]
            ]
        },
    }


def parse_reference(data: Any, *, source: str) -> tuple[bytes, MeasurementAlgo]:
    """The RIM and algorithm of a reference file (``attest reference --output json``)."""
    if not isinstance(data, dict):
        raise ReferenceValueError(
            (
                Violation(
                    source, "expected the JSON object that 'attest reference --output json' prints"
                ),
            )
        )
    algo = data.get("measurementAlgo")
    if algo not in DIGEST_BYTES:
        raise ReferenceValueError(
            (
                Violation(
                    f"{source}: measurementAlgo", f"expected sha256, sha384 or sha512, got {algo!r}"
                ),
            )
        )
    text = data.get("rim")
    try:
        rim = bytes.fromhex(text) if isinstance(text, str) else None
    except ValueError:
        rim = None
    if rim is None or len(rim) != DIGEST_BYTES[algo]:
        raise ReferenceValueError(
            (
                Violation(
                    f"{source}: rim",
                    f"expected {DIGEST_BYTES[algo]} bytes of hex ({algo}), got {text!r}",
                ),
            )
        )
    return rim, algo


def _step_json(step: Step) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": step.kind, "rim": step.rim.hex()}
    if step.kind == "ripas":
        out.update(base=step.base, top=step.top)
    elif step.kind == "data":
        out.update(
            ipa=step.ipa, contentDigest=step.content_digest.hex() if step.content_digest else None
        )
    elif step.kind == "rec":
        out.update(pc=step.pc, gprs=list(step.gprs or ()))
    return out


# --- helpers -------------------------------------------------------------------------------------


def _check_fits(profile: HostProfile, layout: RealmLayout) -> None:
    # The protected (Realm) half of the IPA space is the lower one.
    limit = 1 << (profile.ipa_bits - 1)
    top = max(
        [layout.ram_base + layout.ram_size] + [image.ipa + image.size for image in layout.images]
    )
    if top > limit:
        raise ReferenceValueError(
            (
                Violation(
                    "profile.ipaBits",
                    f"{profile.ipa_bits} bits give the Realm {limit:#x} bytes of protected address "
                    f"space, but its memory ends at {top:#x}; "
                    "lower --memory or use a host with more IPA bits",
                ),
            )
        )


def _hasher(algo: MeasurementAlgo) -> Callable[[bytes], bytes]:
    """The algorithm's hash, returned in the RMM's 64-byte measurement slot."""
    size = DIGEST_BYTES[algo]

    def digest(data: bytes) -> bytes:
        return hashlib.new(algo, data).digest() + bytes(MEASUREMENT_SLOT - size)

    return digest


def _descriptor(kind: int, rim: bytes) -> bytearray:
    desc = bytearray(DESCRIPTOR_BYTES)
    desc[0] = kind
    _put(desc, 0x08, DESCRIPTOR_BYTES)
    desc[0x10 : 0x10 + MEASUREMENT_SLOT] = rim.ljust(MEASUREMENT_SLOT, b"\0")
    return desc


def _put(buffer: bytearray, offset: int, value: int) -> None:
    buffer[offset : offset + 8] = value.to_bytes(8, "little")


def _align_up(value: int, alignment: int) -> int:
    return -(-value // alignment) * alignment


def _align_down(value: int, alignment: int) -> int:
    return value - value % alignment
