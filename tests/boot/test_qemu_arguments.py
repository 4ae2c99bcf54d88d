"""What a real QEMU does with foreign arguments: the facts behind core/domain/qemuargs.py.

Each test starts Debian's ``qemu-system-aarch64`` (7.2, the boot lane's) stopped, with the
arguments under test, and reads back what QEMU made of them. Debian's QEMU has no ``rme-guest``
(and no confidential-guest-support type for aarch64 at all), so confidential-guest-support is
observed through which object QEMU looks up: a name that does not exist fails with "Device
'NAME' not found", an existing object of the wrong type with "Invalid parameter type": the
error shows which of several values QEMU used. docs/rewrite.md ("Foreign QEMU arguments")
draws the conclusions.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.boot.qmp import Run, hmp, qom_get, run_qemu
from tests.core.qemu_cases import HARMLESS_ARGUMENTS

pytestmark = pytest.mark.boot

VIRT = ("-machine", "virt")
OBJECT = ("-object", "secret,id=obj0,data=x")  # exists, but is no confidential-guest-support
WRONG_TYPE = "Invalid parameter type for 'confidential-guest-support'"
CGS = "confidential-guest-support"
RNG = "/machine/peripheral/rng0"


def not_found(name: str) -> str:
    return f"Device '{name}' not found"


def refused_with(run: Run, text: str) -> None:
    assert not run.started, run
    assert text in run.stderr, run.stderr


# --- confidential-guest-support and the machine -------------------------------------------------


@pytest.mark.parametrize(
    "foreign",
    [
        ("-machine", f"{CGS}=nosuch"),
        ("-M", f"{CGS}=nosuch"),
        ("--machine", f"{CGS}=nosuch"),
        ("-machine", f"type=virt,{CGS}=nosuch"),
        ("-machine", f"virt,{CGS}=nosuch"),
    ],
    ids=lambda args: " ".join(args),
)
def test_a_later_machine_option_wins_confidential_guest_support(
    qemu_binary: Path, foreign: tuple[str, str]
) -> None:
    """QEMU merges every -machine, in every spelling, and the last value is the one it uses."""
    ours = ("-machine", f"{CGS}=obj0")
    refused_with(run_qemu(qemu_binary, [*VIRT, *OBJECT, *ours, *foreign]), not_found("nosuch"))
    refused_with(run_qemu(qemu_binary, [*VIRT, *OBJECT, *foreign, *ours]), WRONG_TYPE)


def test_readconfig_reaches_confidential_guest_support(qemu_binary: Path, tmp_path: Path) -> None:
    config = tmp_path / "machine.cfg"
    config.write_text(f'[machine]\n  {CGS} = "fromfile"\n')
    args = [*VIRT, *OBJECT, "-machine", f"{CGS}=obj0", "-readconfig", str(config)]
    refused_with(run_qemu(qemu_binary, args), not_found("fromfile"))


def test_a_doubled_comma_is_part_of_the_value(qemu_binary: Path) -> None:
    """``,,`` is a literal comma: ``rme0,,x`` names another object than ``rme0``."""
    refused_with(run_qemu(qemu_binary, [*VIRT, "-machine", f"{CGS}=obj0,,x"]), not_found("obj0,x"))


def test_the_object_may_come_after_the_machine_option(qemu_binary: Path) -> None:
    """Objects exist before machine properties are set: only which -machine is last matters."""
    refused_with(run_qemu(qemu_binary, [*VIRT, "-machine", f"{CGS}=obj0", *OBJECT]), WRONG_TYPE)


def test_every_machine_property_takes_the_last_value(qemu_binary: Path) -> None:
    run = run_qemu(
        qemu_binary,
        ["-machine", "virt,gic-version=2", "-M", "gic-version=3"],
        qom_get("/machine", "gic-version"),
    )
    assert run.started and run.answers == ("3",), run


# --- the accelerator ----------------------------------------------------------------------------


def tcg_runs(run: Run, *, answer: int = 0) -> bool:
    """TCG's ``info jit`` answers with its translation buffer only when TCG is the accelerator
    (``answer``: where that command's answer is)."""
    return run.started and "Translation buffer state" in str(run.answers[answer])


def test_the_last_machine_accel_wins(qemu_binary: Path) -> None:
    jit = hmp("info jit")
    assert tcg_runs(
        run_qemu(qemu_binary, ["-machine", "virt,accel=nosuch", "-M", "accel=tcg"], jit)
    )
    refused_with(
        run_qemu(qemu_binary, ["-machine", "virt,accel=tcg", "-M", "accel=nosuch"]),
        "invalid accelerator nosuch",
    )


def test_later_accel_options_are_fallbacks(qemu_binary: Path) -> None:
    """-accel is tried in order until one starts: a later one is used when the first fails."""
    jit = hmp("info jit")
    assert tcg_runs(run_qemu(qemu_binary, [*VIRT, "-accel", "tcg", "-accel", "nosuch"], jit))
    fallback = run_qemu(qemu_binary, [*VIRT, "-accel", "nosuch", "-accel", "tcg"], jit)
    assert tcg_runs(fallback) and "falling back to tcg" in fallback.stderr


@pytest.mark.parametrize(
    "mixed",
    [("-machine", "accel=tcg"), ("-enable-kvm",)],
    ids=lambda args: " ".join(args),
)
def test_accel_with_machine_accel_or_enable_kvm_stops_qemu(
    qemu_binary: Path, mixed: tuple[str, ...]
) -> None:
    refused_with(
        run_qemu(qemu_binary, [*VIRT, "-accel", "tcg", *mixed]),
        'The -accel and "-machine accel=" options are incompatible',
    )


# --- the CPU ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "last"), [("cortex-a57", "max"), ("max", "cortex-a57")], ids=["a57-max", "max-a57"]
)
def test_the_last_cpu_wins(qemu_binary: Path, first: str, last: str) -> None:
    run = run_qemu(
        qemu_binary,
        [*VIRT, "-cpu", first, "-cpu", last],
        qom_get("/machine/unattached/device[0]", "type"),
    )
    assert run.started and run.answers == (f"{last}-arm-cpu",), run


# --- virtio iommu_platform ----------------------------------------------------------------------


def iommu_platform(qemu_binary: Path, *args: str) -> bool:
    run = run_qemu(qemu_binary, [*VIRT, *args], qom_get(RNG, "iommu_platform"))
    assert run.started, run
    answer = run.answers[0]
    assert isinstance(answer, bool), run
    return answer


JSON_RNG = '{"driver": "virtio-rng-pci", "id": "rng0", "disable-legacy": "on"%s}'


@pytest.mark.parametrize("global_type", ["virtio-rng-pci", "virtio-device"])
def test_global_sets_iommu_platform_of_devices_that_do_not_set_it(
    qemu_binary: Path, global_type: str
) -> None:
    """-global changes the default for a type and its subtypes (also the abstract virtio-device)."""
    device = ("-device", "virtio-rng-pci,id=rng0,disable-legacy=on")
    assert not iommu_platform(qemu_binary, *device)
    assert iommu_platform(qemu_binary, "-global", f"{global_type}.iommu_platform=on", *device)


def test_an_explicit_iommu_platform_outlives_global_in_either_order(qemu_binary: Path) -> None:
    """What libvirt writes for iommu='on' (a JSON -device) keeps it whatever -global says."""
    device = ("-device", JSON_RNG % ', "iommu_platform": true')
    off = ("-global", "virtio-rng-pci.iommu_platform=off")
    assert iommu_platform(qemu_binary, *off, *device)
    assert iommu_platform(qemu_binary, *device, *off)


def test_set_overrides_an_explicit_device_property(qemu_binary: Path) -> None:
    """-set rewrites a (QemuOpts) -device's property after the fact; a JSON one it cannot find."""
    device = ("-device", "virtio-rng-pci,id=rng0,disable-legacy=on,iommu_platform=on")
    assert not iommu_platform(qemu_binary, *device, "-set", "device.rng0.iommu_platform=off")
    refused_with(
        run_qemu(
            qemu_binary,
            [*VIRT, "-device", JSON_RNG % ', "iommu_platform": true', "-set", "device.rng0.x=y"],
        ),
        'there is no device "rng0" defined',
    )


def test_global_disable_legacy_off_stops_an_iommu_device(qemu_binary: Path) -> None:
    refused_with(
        run_qemu(
            qemu_binary,
            [
                *VIRT,
                "-global",
                "virtio-rng-pci.disable-legacy=off",
                "-device",
                '{"driver": "virtio-rng-pci", "id": "rng0", "iommu_platform": true}',
            ],
        ),
        "VIRTIO_F_IOMMU_PLATFORM was supported by neither legacy nor transitional device",
    )


# --- how arguments are read ---------------------------------------------------------------------


def test_an_option_takes_the_next_argument_whatever_it_looks_like(qemu_binary: Path) -> None:
    """``-fw_cfg -machine accel=nosuch``: -machine is fw_cfg's value, and the bare word after it
    is opened as a disk image, not read as an accelerator."""
    run = run_qemu(qemu_binary, [*VIRT, "-fw_cfg", "-machine", "accel=nosuch"])
    refused_with(run, "Could not open 'accel=nosuch'")
    assert "invalid accelerator" not in run.stderr


def test_fw_cfg_takes_no_machine_property(qemu_binary: Path) -> None:
    refused_with(
        run_qemu(qemu_binary, [*VIRT, "-fw_cfg", "name=opt/x,string=1,machine=x"]),
        "Invalid parameter 'machine'",
    )


@pytest.mark.parametrize("case", list(HARMLESS_ARGUMENTS))
def test_the_allowed_arguments_start_qemu_and_change_no_machine_property(
    qemu_binary: Path, tmp_path: Path, case: str
) -> None:
    """What the hook lets through is what QEMU accepts (the Ignition file made to exist here),
    and leaves the machine's confidential-guest-support, accelerator and CPU as they were."""
    ignition = tmp_path / "x.ign"
    ignition.write_text("{}")
    values = [
        f"name=opt/com.coreos/config,file={ignition}" if value.endswith(".ign") else value
        for value in HARMLESS_ARGUMENTS[case]
    ]
    asks = (
        qom_get("/machine", CGS),
        qom_get("/machine/unattached/device[0]", "type"),
        hmp("info jit"),
    )
    plain = run_qemu(qemu_binary, [*VIRT, "-cpu", "cortex-a57"], *asks)
    run = run_qemu(qemu_binary, [*VIRT, "-cpu", "cortex-a57", *values], *asks)
    assert run.started, run
    assert run.answers[:2] == plain.answers[:2] and tcg_runs(run, answer=2)
