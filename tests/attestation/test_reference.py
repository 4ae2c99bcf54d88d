"""The reference RIM: public vectors, hand-built chains, the QEMU virt layout, properties.

The oracle here is written from the RMM specification's layouts (offsets packed with
``struct`` in this file), not from the code under test.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubevirt_cca.core.attestation.profile import HostProfile, parse_profile
from kubevirt_cca.core.attestation.reference import (
    Image,
    RealmLayout,
    Reference,
    compute_rim,
    corim_json,
    parse_reference,
    payload_layout,
    qemu_virt_layout,
    reference_json,
    ripas_ranges,
    translation_block_sizes,
)
from kubevirt_cca.errors import ReferenceValueError

GiB, MiB, KiB = 2**30, 2**20, 2**10
RAM = 0x4000_0000

# veraison/cca-realm-measurements, src/realm_config.rs, test_rim: IPA 48 bits, 2 breakpoints,
# 2 watchpoints, no SVE, no PMU; the RIM after RMI_REALM_CREATE alone (no RIPAS, data or REC).
VERAISON_TEST_RIM = {
    "sha256": "6739dfb22b75ee1268d08dfa8369f501bc0b066243553f069f560d1fa1172973",
    "sha512": "799e434048fb57eb9d4f0e2a2b98158720377252deab2bdfcd69b5a8f82237f4"
    "34bd6bb1c75bf160a2d49382f733b3439a3ff769e4ea5dd9a6f72239d44bbbab",
}


def profile(**changes: Any) -> HostProfile:
    data: dict[str, Any] = {
        "rmmVersion": "1.0",
        "measurementAlgo": "sha256",
        "ipaBits": 48,
        "lpa2": False,
        "sveVectorLength": None,
        "breakpoints": 2,
        "watchpoints": 2,
        "pmuCounters": None,
    }
    data.update(changes)
    if data["rmmVersion"] == "2.0":
        # RMM 2.0 profiles must say both (flags0 is measured whole); the tests' default is
        # the flags0 word RMM 1.0 would give.
        data.setdefault("deviceAssignment", False)
        data.setdefault("mecPolicy", "shared")
    return parse_profile(data)


# --- an independent model of the RMM's measurement ------------------------------------------


def slot(algo: str, data: bytes) -> bytes:
    digest = hashlib.new(algo, data).digest()
    return digest + bytes(64 - len(digest))


def params_page(
    *, flags: int, s2sz: int, sve_vl: int, bps: int, wps: int, pmu: int, algo: int
) -> bytes:
    head = struct.pack("<QQQQQQQ", flags, s2sz, sve_vl, bps, wps, pmu, algo)
    return head + bytes(4096 - len(head))


def desc(kind: int, rim: bytes, tail: bytes) -> bytes:
    head = struct.pack("<B7xQ", kind, 0x100) + rim + tail
    return head + bytes(0x100 - len(head))


def data_step(algo: str, rim: bytes, ipa: int, granule: bytes) -> bytes:
    return slot(algo, desc(0, rim, struct.pack("<QQ", ipa, 1) + slot(algo, granule)))


def ripas_step(algo: str, rim: bytes, base: int, top: int) -> bytes:
    return slot(algo, desc(2, rim, struct.pack("<QQ", base, top)))


def rec_step(algo: str, rim: bytes, pc: int, gprs: list[int]) -> bytes:
    page = bytearray(4096)
    struct.pack_into("<Q", page, 0, 1)
    struct.pack_into("<Q", page, 0x200, pc)
    struct.pack_into("<8Q", page, 0x300, *gprs)
    return slot(algo, desc(1, rim, slot(algo, bytes(page))))


# --- the public vectors ----------------------------------------------------------------------


@pytest.mark.parametrize("algo", ["sha256", "sha512"])
def test_veraison_test_rim_vectors(algo: str) -> None:
    reference = compute_rim(
        profile(measurementAlgo=algo),
        qemu_virt_layout(memory=GiB, dtb=b"d", firmware=b"f"),
        trace=True,
    )
    first = reference.steps[0]
    assert first.kind == "realm-create"
    assert first.rim.hex() == VERAISON_TEST_RIM[algo]
    # The same from the layout alone: num_bps and num_wps are written as count - 1.
    page = params_page(
        flags=0, s2sz=48, sve_vl=0, bps=1, wps=1, pmu=0, algo={"sha256": 0, "sha512": 1}[algo]
    )
    assert hashlib.new(algo, page).hexdigest() == VERAISON_TEST_RIM[algo]


def test_realm_params_fields_sit_at_their_offsets() -> None:
    # RMM 2.0 (no PMU there: TF-RMM gives Realms none), every flags0 bit it measures set:
    # LPA2 (0), SVE (1), DA (3), MEC policy private (bits 7-8 = 1).
    chosen = profile(
        rmmVersion="2.0",
        measurementAlgo="sha384",
        ipaBits=52,
        lpa2=True,
        sveVectorLength=512,
        breakpoints=6,
        watchpoints=4,
        deviceAssignment=True,
        mecPolicy="private",
    )
    reference = compute_rim(
        chosen, qemu_virt_layout(memory=GiB, dtb=b"d", firmware=b"f"), trace=True
    )
    flags = 0b1 | 0b10 | 0b1000 | (1 << 7)
    page = params_page(flags=flags, s2sz=52, sve_vl=3, bps=5, wps=3, pmu=0, algo=2)
    assert reference.steps[0].rim == hashlib.sha384(page).digest()
    assert len(reference.rim) == 48
    # The PMU counter count at 0x28, on RMM 1.0 (the only version with a Realm PMU).
    pmu = compute_rim(
        profile(pmuCounters=7, sveVectorLength=256),
        qemu_virt_layout(memory=GiB, dtb=b"d", firmware=b"f"),
        trace=True,
    )
    page = params_page(flags=0b110, s2sz=48, sve_vl=1, bps=1, wps=1, pmu=7, algo=0)
    assert pmu.steps[0].rim == hashlib.sha256(page).digest()


# flags0 of RMM 2.0 for each (deviceAssignment, mecPolicy), written from TF-RMM main's
# lib/smc/include/smc-rmi.h (RMI_REALM_FLAGS0_DA_SHIFT 3, RMI_REALM_FLAGS0_MEC_POLICY_SHIFT 7,
# width 2; RMI_MEC_POLICY_SHARED 0, RMI_MEC_POLICY_PRIVATE 1).
RMM2_FLAGS0 = {
    (False, "shared"): 0x000,
    (True, "shared"): 0x008,
    (False, "private"): 0x080,
    (True, "private"): 0x088,
}


@pytest.mark.parametrize("algo", ["sha256", "sha384", "sha512"])
@pytest.mark.parametrize(("da", "mec"), list(RMM2_FLAGS0))
def test_rmm2_measures_device_assignment_and_mec_policy(algo: str, da: bool, mec: str) -> None:
    chosen = profile(rmmVersion="2.0", measurementAlgo=algo, deviceAssignment=da, mecPolicy=mec)
    reference = compute_rim(
        chosen, qemu_virt_layout(memory=GiB, dtb=b"d", firmware=b"f"), trace=True
    )
    page = params_page(
        flags=RMM2_FLAGS0[(da, mec)],
        s2sz=48,
        sve_vl=0,
        bps=1,
        wps=1,
        pmu=0,
        algo={"sha256": 0, "sha512": 1, "sha384": 2}[algo],
    )
    assert reference.steps[0].rim == hashlib.new(algo, page).digest()


def test_each_rmm2_flag_gives_its_own_rim() -> None:
    layout = qemu_virt_layout(memory=GiB, dtb=b"d", firmware=b"f")
    rims = {
        compute_rim(profile(rmmVersion="2.0", deviceAssignment=da, mecPolicy=mec), layout).rim
        for da, mec in RMM2_FLAGS0
    }
    assert len(rims) == 4
    # DA off and MEC shared is the flags0 word RMM 1.0 measures: only the RIPAS steps differ.
    plain = compute_rim(profile(rmmVersion="2.0"), layout, trace=True)
    v1 = compute_rim(profile(), layout, trace=True)
    assert plain.steps[0].rim == v1.steps[0].rim


def test_pmu_with_zero_counters_still_sets_the_flag() -> None:
    reference = compute_rim(
        profile(pmuCounters=0), qemu_virt_layout(memory=GiB, dtb=b"d", firmware=b"f"), trace=True
    )
    page = params_page(flags=0b100, s2sz=48, sve_vl=0, bps=1, wps=1, pmu=0, algo=0)
    assert reference.steps[0].rim == hashlib.sha256(page).digest()


# --- hand-built chains -------------------------------------------------------------------------


@pytest.mark.parametrize("algo", ["sha256", "sha512"])
def test_firmware_boot_chain_step_by_step(algo: str) -> None:
    firmware = bytes(range(256)) * 20  # 5120 bytes: two granules, the second zero-filled
    dtb = b"\xd0\x0d\xfe\xed" + b"\x01" * 96
    reference = compute_rim(
        profile(measurementAlgo=algo),
        qemu_virt_layout(memory=GiB, dtb=dtb, firmware=firmware),
        trace=True,
    )
    size = hashlib.new(algo).digest_size
    rim = slot(
        algo,
        params_page(
            flags=0, s2sz=48, sve_vl=0, bps=1, wps=1, pmu=0, algo={"sha256": 0, "sha512": 1}[algo]
        ),
    )
    expected = [("realm-create", rim)]
    rim = ripas_step(algo, rim, RAM, RAM + GiB)  # 48 bits: one 1 GiB block
    expected.append(("ripas", rim))
    rim = data_step(algo, rim, 0x0, firmware[:4096])
    expected.append(("data", rim))
    rim = data_step(algo, rim, 0x1000, firmware[4096:] + bytes(8192 - len(firmware)))
    expected.append(("data", rim))
    rim = data_step(algo, rim, RAM, dtb + bytes(4096 - len(dtb)))
    expected.append(("data", rim))
    rim = rec_step(algo, rim, 0, [0] * 8)
    expected.append(("rec", rim))
    assert [(s.kind, s.rim) for s in reference.steps] == [(k, r[:size]) for k, r in expected]
    assert reference.rim == rim[:size]
    ripas = reference.steps[1]
    assert (ripas.base, ripas.top) == (RAM, RAM + GiB)
    assert [s.ipa for s in reference.steps if s.kind == "data"] == [0, 0x1000, RAM]
    assert reference.steps[2].content_digest == hashlib.new(algo, firmware[:4096]).digest()


def test_rmm_2_does_not_measure_ripas() -> None:
    layout = qemu_virt_layout(memory=GiB, dtb=b"d", firmware=b"f")
    v1 = compute_rim(profile(), layout, trace=True)
    v2 = compute_rim(profile(rmmVersion="2.0"), layout, trace=True)
    assert [s.kind for s in v1.steps] == ["realm-create", "ripas", "data", "data", "rec"]
    assert [s.kind for s in v2.steps] == ["realm-create", "data", "data", "rec"]
    assert v1.rim != v2.rim


def test_direct_kernel_boot_layout_and_chain() -> None:
    kernel = b"K" * (10 * KiB + 1)  # three granules
    initrd = b"I" * 3000
    dtb = b"D" * 200
    layout = qemu_virt_layout(memory=512 * MiB, dtb=dtb, kernel=kernel, initrd=initrd)
    initrd_at = RAM + 128 * MiB  # min(RAM / 2, 128 MiB)
    dtb_at = initrd_at + 2 * MiB  # after the initrd, 2 MiB aligned
    assert [(i.name, i.ipa) for i in layout.images] == [
        ("kernel", RAM),
        ("initrd", initrd_at),
        ("dtb", dtb_at),
    ]
    assert (layout.pc, layout.gprs) == (RAM, (dtb_at, 0, 0, 0, 0, 0, 0, 0))
    reference = compute_rim(profile(rmmVersion="2.0", measurementAlgo="sha512"), layout)
    rim = slot("sha512", params_page(flags=0, s2sz=48, sve_vl=0, bps=1, wps=1, pmu=0, algo=1))
    for offset in range(0, len(kernel), 4096):
        chunk = kernel[offset : offset + 4096]
        rim = data_step("sha512", rim, RAM + offset, chunk + bytes(4096 - len(chunk)))
    rim = data_step("sha512", rim, initrd_at, initrd + bytes(4096 - len(initrd)))
    rim = data_step("sha512", rim, dtb_at, dtb + bytes(4096 - len(dtb)))
    rim = rec_step("sha512", rim, RAM, [dtb_at, 0, 0, 0, 0, 0, 0, 0])
    assert reference.rim == rim


def test_payload_layout_and_chain() -> None:
    """A raw payload at the start of RAM, pc on its first byte, x0..x7 zero (tests/realm)."""
    payload = b"P" * (4096 + 10)  # two granules
    layout = payload_layout(memory=3 * MiB, payload=payload)
    assert [(i.name, i.ipa) for i in layout.images] == [("payload", RAM)]
    assert (layout.ram_base, layout.ram_size) == (RAM, 3 * MiB)
    assert (layout.pc, layout.gprs) == (RAM, (0,) * 8)
    reference = compute_rim(profile(ipaBits=40, breakpoints=6, watchpoints=4), layout)
    rim = slot("sha256", params_page(flags=0, s2sz=40, sve_vl=0, bps=5, wps=3, pmu=0, algo=0))
    rim = ripas_step("sha256", rim, RAM, RAM + 2 * MiB)  # one 2 MiB block, then 4 KiB pages
    for page in range(256):
        rim = ripas_step(
            "sha256", rim, RAM + 2 * MiB + page * 4096, RAM + 2 * MiB + (page + 1) * 4096
        )
    rim = data_step("sha256", rim, RAM, payload[:4096])
    rim = data_step("sha256", rim, RAM + 4096, payload[4096:] + bytes(4096 - 10))
    rim = rec_step("sha256", rim, RAM, [0] * 8)
    assert reference.rim == rim[:32]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"memory": 2 * MiB, "payload": b""}, "--payload"),
        ({"memory": 2 * MiB + 1, "payload": b"p"}, "--memory"),
        ({"memory": 0, "payload": b"p"}, "--memory"),
        ({"memory": 4096, "payload": bytes(4097)}, "--memory"),
    ],
)
def test_bad_payload_inputs_name_the_flag(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ReferenceValueError) as caught:
        payload_layout(**kwargs)
    assert caught.value.violations[0].field == field


def test_small_ram_puts_the_initrd_at_half_of_it() -> None:
    layout = qemu_virt_layout(memory=64 * MiB, dtb=b"d", kernel=b"k" * 100, initrd=b"i")
    assert layout.images[1].ipa == RAM + 32 * MiB
    assert layout.images[2].ipa == RAM + 34 * MiB


def test_a_large_kernel_pushes_the_initrd_past_its_end() -> None:
    kernel = bytes(33 * MiB + 5)
    layout = qemu_virt_layout(memory=64 * MiB, dtb=b"d", kernel=kernel, initrd=b"i")
    assert layout.images[1].ipa == RAM + 33 * MiB + 4 * KiB  # kernel end, 4 KiB aligned
    assert layout.images[2].ipa == RAM + 34 * MiB


def test_without_initrd_the_dtb_follows_the_initrd_slot() -> None:
    layout = qemu_virt_layout(memory=GiB, dtb=b"d", kernel=b"k")
    assert [i.name for i in layout.images] == ["kernel", "dtb"]
    assert layout.images[1].ipa == RAM + 128 * MiB
    assert layout.gprs[0] == RAM + 128 * MiB


# --- RIPAS: one measurement per stage-2 entry ---------------------------------------------------


@pytest.mark.parametrize(
    ("bits", "sizes"),
    [
        (52, 0x8040201000),
        (48, 0x8040201000),
        (44, 0x8040201000),
        (43, 0x0040201000),
        (40, 0x0040201000),
        (35, 0x0040201000),
        (34, 0x0000201000),
        (30, 0x0000201000),
    ],
)
def test_translation_block_sizes(bits: int, sizes: int) -> None:
    mask = 0
    for size in translation_block_sizes(bits):
        mask |= size
    assert mask == sizes


def test_ripas_ranges_take_the_largest_aligned_blocks() -> None:
    top = RAM + GiB + 2 * MiB + 4 * KiB
    assert ripas_ranges(RAM, top, ipa_bits=48) == [
        (RAM, RAM + GiB),
        (RAM + GiB, RAM + GiB + 2 * MiB),
        (RAM + GiB + 2 * MiB, top),
    ]
    # 512 MiB at 1 GiB: no 1 GiB block fits, 256 blocks of 2 MiB.
    ranges = ripas_ranges(RAM, RAM + 512 * MiB, ipa_bits=48)
    assert len(ranges) == 256 and all(t - b == 2 * MiB for b, t in ranges)


def test_ripas_chain_for_512_mib() -> None:
    layout = qemu_virt_layout(memory=512 * MiB, dtb=b"d", firmware=b"f")
    reference = compute_rim(profile(), layout, trace=True)
    ripas = [s for s in reference.steps if s.kind == "ripas"]
    rim = slot("sha256", params_page(flags=0, s2sz=48, sve_vl=0, bps=1, wps=1, pmu=0, algo=0))
    for index, step in enumerate(ripas):
        base = RAM + index * 2 * MiB
        rim = ripas_step("sha256", rim, base, base + 2 * MiB)
        assert (step.base, step.top, step.rim) == (base, base + 2 * MiB, rim[:32])


# --- properties --------------------------------------------------------------------------------

blobs = st.binary(min_size=1, max_size=9000)
kernels = blobs.filter(lambda b: not b.startswith(b"\x1f\x8b"))  # gzip is refused


@settings(max_examples=60, deadline=None)
@given(
    firmware=blobs,
    dtb=blobs,
    which=st.sampled_from(["firmware", "dtb"]),
    position=st.integers(min_value=0),
    flip=st.integers(min_value=1, max_value=255),
)
def test_any_changed_byte_changes_the_rim(
    firmware: bytes, dtb: bytes, which: str, position: int, flip: int
) -> None:
    base = compute_rim(profile(), qemu_virt_layout(memory=GiB, dtb=dtb, firmware=firmware))
    inputs = {"firmware": bytearray(firmware), "dtb": bytearray(dtb)}
    target = inputs[which]
    target[position % len(target)] ^= flip
    changed = compute_rim(
        profile(),
        qemu_virt_layout(memory=GiB, dtb=bytes(inputs["dtb"]), firmware=bytes(inputs["firmware"])),
    )
    assert changed.rim != base.rim


@settings(max_examples=40, deadline=None)
@given(
    kernel=kernels,
    initrd=st.none() | blobs,
    dtb=blobs,
    memory=st.sampled_from([64 * MiB, 256 * MiB, GiB + 2 * MiB]),
    rmm=st.sampled_from(["1.0", "2.0"]),
    algo=st.sampled_from(["sha256", "sha512"]),
)
def test_the_trace_replays_to_the_rim(
    kernel: bytes, initrd: bytes | None, dtb: bytes, memory: int, rmm: str, algo: str
) -> None:
    chosen = profile(rmmVersion=rmm, measurementAlgo=algo)
    layout = qemu_virt_layout(memory=memory, dtb=dtb, kernel=kernel, initrd=initrd)
    reference = compute_rim(chosen, layout, trace=True)
    contents = {image.ipa: image.content for image in layout.images}
    granule_of = {}
    for ipa, content in contents.items():
        for offset in range(0, len(content), 4096):
            chunk = content[offset : offset + 4096]
            granule_of[ipa + offset] = chunk + bytes(4096 - len(chunk))
    size = hashlib.new(algo).digest_size
    rim = b""
    for step in reference.steps:
        if step.kind == "realm-create":
            rim = step.rim + bytes(64 - size)
            continue
        if step.kind == "ripas":
            assert step.base is not None and step.top is not None
            rim = ripas_step(algo, rim, step.base, step.top)
        elif step.kind == "data":
            assert step.ipa is not None
            assert step.content_digest == hashlib.new(algo, granule_of.pop(step.ipa)).digest()
            rim = data_step(algo, rim, step.ipa, _granule(layout, step.ipa))
        else:
            rim = rec_step(algo, rim, step.pc or 0, list(step.gprs or ()))
        assert step.rim == rim[:size]
    assert granule_of == {}  # every granule of every image was measured once
    assert reference.rim == rim[:size]
    assert reference_json(reference, trace=False) == {
        "rim": rim[:size].hex(),
        "measurementAlgo": algo,
    }


def _granule(layout: RealmLayout, ipa: int) -> bytes:
    for image in layout.images:
        if image.ipa <= ipa < image.ipa + len(image.content):
            chunk = image.content[ipa - image.ipa : ipa - image.ipa + 4096]
            return chunk + bytes(4096 - len(chunk))
    raise AssertionError(ipa)


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"rmmVersion": "3.0"}, "profile.rmmVersion"),
        ({"rmmVersion": 1.0}, "profile.rmmVersion"),
        ({"measurementAlgo": "md5"}, "profile.measurementAlgo"),
        ({"measurementAlgo": "sha384"}, "profile.measurementAlgo"),  # needs RMM 2.0
        ({"ipaBits": 52}, "profile.ipaBits"),  # needs lpa2
        ({"ipaBits": "48"}, "profile.ipaBits"),
        ({"ipaBits": True}, "profile.ipaBits"),
        ({"lpa2": "no"}, "profile.lpa2"),
        ({"sveVectorLength": 100}, "profile.sveVectorLength"),
        ({"sveVectorLength": 384 + 64}, "profile.sveVectorLength"),
        ({"sveVectorLength": 4096}, "profile.sveVectorLength"),
        ({"breakpoints": 1}, "profile.breakpoints"),
        ({"watchpoints": 17}, "profile.watchpoints"),
        ({"pmuCounters": 32}, "profile.pmuCounters"),
        ({"pmuCounters": -1}, "profile.pmuCounters"),
        ({"rmmVersion": "2.0", "pmuCounters": 4}, "profile.pmuCounters"),  # no PMU in 2.0
        ({"rmmVersion": "2.0", "pmuCounters": 0}, "profile.pmuCounters"),
        ({"deviceAssignment": True}, "profile.deviceAssignment"),  # RMM 2.0 only
        ({"deviceAssignment": False}, "profile.deviceAssignment"),
        ({"mecPolicy": "shared"}, "profile.mecPolicy"),
        ({"rmmVersion": "2.0", "deviceAssignment": "yes"}, "profile.deviceAssignment"),
        ({"rmmVersion": "2.0", "mecPolicy": 1}, "profile.mecPolicy"),
        ({"rmmVersion": "2.0", "mecPolicy": "secret"}, "profile.mecPolicy"),
        ({"extra": 1}, "profile.extra"),
    ],
)
def test_a_bad_profile_names_the_key(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ReferenceValueError) as caught:
        profile(**changes)
    assert [v.field for v in caught.value.violations] == [field]


def test_a_missing_key_and_a_non_mapping() -> None:
    with pytest.raises(ReferenceValueError, match=r"profile\.pmuCounters: required"):
        parse_profile(
            {
                "rmmVersion": "1.0",
                "measurementAlgo": "sha256",
                "ipaBits": 48,
                "lpa2": False,
                "sveVectorLength": None,
                "breakpoints": 2,
                "watchpoints": 2,
            }
        )
    with pytest.raises(ReferenceValueError, match="expected a mapping"):
        parse_profile(["rmmVersion"])
    rmm2 = {
        "rmmVersion": "2.0",
        "measurementAlgo": "sha384",
        "ipaBits": 48,
        "lpa2": False,
        "sveVectorLength": None,
        "breakpoints": 2,
        "watchpoints": 2,
        "pmuCounters": None,
    }
    with pytest.raises(ReferenceValueError) as caught:
        parse_profile(rmm2)
    assert [v.field for v in caught.value.violations] == [
        "profile.deviceAssignment",
        "profile.mecPolicy",
    ]
    assert 'required with rmmVersion "2.0"' in str(caught.value)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"memory": GiB, "dtb": b"d"}, "--firmware/--kernel"),
        ({"memory": GiB, "dtb": b"d", "firmware": b"f", "kernel": b"k"}, "--firmware/--kernel"),
        ({"memory": GiB, "dtb": b"d", "firmware": b"f", "initrd": b"i"}, "--initrd"),
        ({"memory": GiB + 1, "dtb": b"d", "firmware": b"f"}, "--memory"),
        ({"memory": 0, "dtb": b"d", "firmware": b"f"}, "--memory"),
        ({"memory": GiB, "dtb": b"", "firmware": b"f"}, "--dtb"),
        ({"memory": GiB, "dtb": b"d", "kernel": b"\x1f\x8b\x08rest"}, "--kernel"),
        ({"memory": GiB, "dtb": b"d", "firmware": bytes(64 * MiB + 1)}, "--firmware"),
        ({"memory": 4 * MiB, "dtb": b"d", "kernel": bytes(4 * MiB)}, "--memory"),
    ],
)
def test_bad_launch_inputs_name_the_flag(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ReferenceValueError) as caught:
        qemu_virt_layout(**kwargs)
    assert caught.value.violations[0].field == field


def test_memory_beyond_the_ipa_space_names_ipa_bits() -> None:
    layout = qemu_virt_layout(memory=2 * GiB, dtb=b"d", firmware=b"f")
    with pytest.raises(ReferenceValueError, match=r"profile\.ipaBits"):
        compute_rim(profile(ipaBits=32), layout)


# --- the reference file and the CoMID --------------------------------------------------------


def test_reference_file_round_trip_and_errors() -> None:
    reference = Reference(rim=b"\x01" * 48, measurement_algo="sha384")
    assert parse_reference(reference_json(reference, trace=False), source="f") == (
        b"\x01" * 48,
        "sha384",
    )
    for bad, field in [
        ([], "f"),
        ({"rim": "00" * 32, "measurementAlgo": "md5"}, "f: measurementAlgo"),
        ({"rim": "00" * 31, "measurementAlgo": "sha256"}, "f: rim"),
        ({"rim": "zz", "measurementAlgo": "sha256"}, "f: rim"),
        ({"rim": 5, "measurementAlgo": "sha256"}, "f: rim"),
    ]:
        with pytest.raises(ReferenceValueError) as caught:
            parse_reference(bad, source="f")
        assert caught.value.violations[0].field == field


def test_corim_carries_the_rim() -> None:
    import base64

    reference = Reference(rim=bytes(range(32)), measurement_algo="sha256")
    comid = corim_json(reference, tag_id="t")
    triple = comid["triples"]["reference-triples"][0]
    encoded = base64.b64encode(bytes(range(32))).decode()
    assert triple[0]["class"]["class-id"] == {"type": "bytes", "value": encoded}
    assert triple[1] == [{"mkey": "cca.rim", "mval": {"digests": [f"sha-256;{encoded}"]}}]


@pytest.mark.parametrize("algo", ["sha256", "sha512"])
def test_a_prehashed_firmware_gives_the_rim_of_its_bytes(algo: str) -> None:
    firmware = bytes(range(256)) * 40 + b"\xff" * 5000  # granules, the last one partial
    padded = firmware + bytes(-len(firmware) % 4096)
    digests = tuple(
        hashlib.new(algo, padded[at : at + 4096]).digest() for at in range(0, len(padded), 4096)
    )
    prehashed = Image("firmware", 0, b"", granule_digests=digests, length=len(firmware))
    chosen = profile(measurementAlgo=algo)
    assert (
        compute_rim(chosen, qemu_virt_layout(memory=GiB, dtb=b"d", firmware=prehashed)).rim
        == compute_rim(chosen, qemu_virt_layout(memory=GiB, dtb=b"d", firmware=firmware)).rim
    )
    other = profile(measurementAlgo="sha512" if algo == "sha256" else "sha256")
    with pytest.raises(ReferenceValueError, match="pre-hashed granules must be"):
        compute_rim(other, qemu_virt_layout(memory=GiB, dtb=b"d", firmware=prehashed))
