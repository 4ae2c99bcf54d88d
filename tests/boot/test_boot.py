"""The boot lane: real libvirt and QEMU (TCG) define and boot the Realm domains the rewrite makes.

For each dialect and both boot styles, the rewritten domain goes through ``adapt_for_tcg`` (the
one list of changes this machine forces), ``virsh define`` and ``virsh start``; a Linux aarch64
guest then checks from ``/sys/bus/virtio/devices/*/features`` that every virtio device negotiated
VIRTIO_F_ACCESS_PLATFORM (bit 33), as a Realm guest demands. The negative control boots the same
domains without the rewrite and must see the check fail. docs/boot-proof.md says what this proves
and what only CCA hardware can.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from lxml import etree

from kubevirt_cca.core.cluster.settings import Dialect
from tests.boot.cases import DIALECTS, FIXTURE, fixture_case, own_cases
from tests.boot.conftest import BootEnv
from tests.boot.daemons import virsh
from tests.boot.domains import DOMAIN_PREFIX, Boot, boot, realm_problems, remove_domain
from tests.boot.kubevirt_cases import BOOT_SHAPES, kubevirt_define
from tests.boot.tcg import Adapted, adapt_for_tcg
from tests.conftest import SHARED, shared_path

pytestmark = pytest.mark.boot

EFI_STUB = "EFI stub: Booting Linux Kernel"
BALLOON_ID = "id=0x0005"
# One TCG guest per core: two boots side by side take half the time of one after another.
BOOTS_AT_ONCE = 2


def _expected_removals(dialect: Dialect) -> list[str]:
    """What the lane must strip from the rewrite's output: only what this libvirt cannot know."""
    if dialect is Dialect.QEMU_COMMANDLINE:
        return [
            "removed qemu:arg -object rme-guest,",
            "removed qemu:arg -machine confidential-guest-support=rme0",
        ]
    return ["removed <launchSecurity type='cca'>"]


@dataclass(frozen=True)
class Planned:
    """One boot of the lane: the domain before adaptation, and how it was made."""

    name: str
    style: str
    domain_xml: str
    dialect: Dialect | None  # None: the negative control, not rewritten


def _plan(name: str) -> Planned:
    """The boot called ``name`` (names are kvcca-boot-SOURCE-STYLE-DIALECT or -plain-STYLE)."""
    source, rest = name.removeprefix(DOMAIN_PREFIX).split("-", 1)
    if source == "plain":
        case = own_cases()[rest]
        return Planned(name, case.style, case.domain_xml, None)
    if source == "kubevirt":
        shape = rest
        return Planned(name, "uefi", kubevirt_define(shape), BOOT_SHAPES[shape])
    if source == "fixture":
        shared_path(*FIXTURE.relative_to(SHARED).parts)  # skips with a reason when absent
        case, dialect = fixture_case(), Dialect(rest)
    else:
        case, dialect = own_cases()[source], Dialect(rest)
    return Planned(name, case.style, case.rewritten(dialect), dialect)


def _names(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    params = callspec.params if callspec is not None else {}
    function = getattr(item, "originalname", item.name)
    if function == "test_rewritten_domain_boots_with_access_platform":
        return f"{DOMAIN_PREFIX}{params['style']}-{params['dialect'].value}"
    if function == "test_kubevirt_fixture_boots_with_access_platform":
        return f"{DOMAIN_PREFIX}fixture-{params['dialect'].value}"
    if function == "test_kubevirt_shape_boots_with_access_platform":
        return f"{DOMAIN_PREFIX}kubevirt-{params['shape']}"
    if function == "test_negative_control_without_rewrite_fails_the_check":
        return f"{DOMAIN_PREFIX}plain-{params['style']}"
    return None


class Lane:
    """The selected boots, two at a time (one per core), in the order the tests will ask."""

    def __init__(self, env: BootEnv, names: list[str]) -> None:
        self._env = env
        self._pool = ThreadPoolExecutor(max_workers=BOOTS_AT_ONCE)
        self._futures: dict[str, Future[tuple[Planned, Adapted, Boot]]] = {
            name: self._pool.submit(self._run, name) for name in names
        }

    def _run(self, name: str) -> tuple[Planned, Adapted, Boot]:
        planned = _plan(name)
        files = self._env.files(name)
        adapted = adapt_for_tcg(planned.domain_xml, name=name, files=files)
        return planned, adapted, boot(adapted, name=name, serial_log=files.serial_log)

    def result(self, name: str) -> tuple[Planned, Adapted, Boot]:
        return self._futures[name].result()

    def close(self) -> None:
        for future in self._futures.values():
            future.cancel()
        self._pool.shutdown(wait=True)


@pytest.fixture(scope="module")
def lane(boot_env: BootEnv, request: pytest.FixtureRequest) -> Iterator[Lane]:
    names = [name for item in request.session.items if (name := _names(item)) is not None]
    started = Lane(boot_env, list(dict.fromkeys(names)))
    try:
        yield started
    finally:
        started.close()


def _boot_realm(lane: Lane, name: str) -> Boot:
    planned, adapted, result = lane.result(name)
    assert planned.dialect is not None
    for expected in _expected_removals(planned.dialect):
        assert any(change.startswith(expected) for change in adapted.changes), (
            f"the rewrite's {planned.dialect} output lacked what the lane expects to remove "
            f"({expected}); adaptations: {adapted.changes}"
        )
    assert realm_problems(result.defined_xml) == [], (
        "libvirt did not keep every Realm property the rewrite set:\n"
        + "\n".join(realm_problems(result.defined_xml))
        + "\n"
        + result.defined_xml
    )
    return result


def _assert_access_platform(result: Boot, style: str) -> None:
    assert result.verdict == "PASS", (
        f"{result.result_line}\n" + "\n".join(result.device_lines) + "\n" + result.describe()
    )
    assert result.device_lines, result.describe()
    assert all(line.endswith("access_platform=1") for line in result.device_lines)
    assert result.shut_off, f"the guest reported but did not power off\n{result.describe()}"
    if style == "uefi":
        assert EFI_STUB in result.serial, (
            f"the firmware did not start the kernel's EFI stub\n{result.describe()}"
        )
    else:
        assert EFI_STUB not in result.serial, f"expected no firmware\n{result.describe()}"


@pytest.mark.parametrize("style", ["uefi", "kernel"])
@pytest.mark.parametrize("dialect", DIALECTS, ids=[d.value for d in DIALECTS])
def test_rewritten_domain_boots_with_access_platform(
    lane: Lane, style: str, dialect: Dialect
) -> None:
    result = _boot_realm(lane, f"{DOMAIN_PREFIX}{style}-{dialect.value}")
    _assert_access_platform(result, style)


@pytest.mark.shared
@pytest.mark.parametrize("dialect", DIALECTS, ids=[d.value for d in DIALECTS])
def test_kubevirt_fixture_boots_with_access_platform(lane: Lane, dialect: Dialect) -> None:
    shared_path(*FIXTURE.relative_to(SHARED).parts)  # skips with a reason when absent
    result = _boot_realm(lane, f"{DOMAIN_PREFIX}fixture-{dialect.value}")
    _assert_access_platform(result, "uefi")


@pytest.mark.peers
@pytest.mark.parametrize("shape", sorted(BOOT_SHAPES))
def test_kubevirt_shape_boots_with_access_platform(lane: Lane, shape: str) -> None:
    """KubeVirt's converter output after our hook's third define (tests/boot/kubevirt_cases.py)."""
    result = _boot_realm(lane, f"{DOMAIN_PREFIX}kubevirt-{shape}")
    _assert_access_platform(result, "uefi")


@pytest.mark.parametrize("style", ["uefi", "kernel"])
def test_negative_control_without_rewrite_fails_the_check(lane: Lane, style: str) -> None:
    """The same domain without the rewrite boots, and the guest sees devices lacking bit 33."""
    _, _, result = lane.result(f"{DOMAIN_PREFIX}plain-{style}")
    assert realm_problems(result.defined_xml), "the plain domain already looks like a Realm"
    assert result.verdict == "FAIL", (
        f"the check passed on a domain without iommu='on'\n{result.describe()}"
    )
    lacking = [line for line in result.device_lines if line.endswith("access_platform=0")]
    assert lacking, result.describe()
    # The balloon the rewrite removes is there, bound, and without the feature.
    assert any(BALLOON_ID in line and "driver=virtio_balloon" in line for line in lacking), (
        result.describe()
    )
    assert result.shut_off, result.describe()


def test_stock_libvirt_refuses_acpi_without_pflash(boot_env: BootEnv) -> None:
    """Why the rewrite drops <acpi/>: libvirt refuses it next to the rewrite's ROM loader."""
    name = f"{DOMAIN_PREFIX}acpi-rom"
    files = boot_env.files(name)
    case = own_cases()["uefi"]
    assert "<acpi/>" in case.domain_xml and "<acpi/>" not in case.rewritten(Dialect.VEP)
    adapted = adapt_for_tcg(case.rewritten(Dialect.VEP), name=name, files=files)
    root = etree.fromstring(adapted.xml.encode())
    features = root.find("features")
    assert features is not None and features.find("acpi") is None
    etree.SubElement(features, "acpi")
    xml_file = files.folder / "domain.xml"
    xml_file.write_bytes(etree.tostring(root))
    remove_domain(name)
    try:
        defined = virsh("define", str(xml_file))
    finally:
        remove_domain(name)
    assert defined.returncode != 0, "libvirt now accepts ACPI with a ROM loader: revisit the lane"
    assert "ACPI requires UEFI on this architecture" in defined.stderr, defined.stderr
