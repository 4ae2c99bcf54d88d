"""The lane's TCG adaptation changes only what it lists, and never fakes a Realm property.

These run everywhere (no libvirt needed): they keep the boot lane honest on a developer machine.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from kubevirt_cca.constants import QEMU_NAMESPACE
from kubevirt_cca.core.cluster.settings import Dialect
from tests.boot.cases import DIALECTS, FIXTURE, Case, fixture_case, own_cases
from tests.boot.domains import realm_problems
from tests.boot.initramfs import ACCESS_PLATFORM_BIT, init_script
from tests.boot.tcg import TCG_CPU_MODEL, BootFiles, adapt_for_tcg
from tests.narrow import attributes


def _files(folder: Path) -> BootFiles:
    return BootFiles(
        kernel=Path("/k/vmlinuz"),
        initrd=Path("/k/initrd"),
        cmdline="console=x",
        serial_log=folder / "serial.log",
        folder=folder,
    )


def _cases() -> list[tuple[str, Case]]:
    cases = list(own_cases().items())
    if FIXTURE.exists():
        cases.append(("fixture", fixture_case()))
    return cases


def _realm_view(xml: str) -> list[tuple[str, dict[str, str]]]:
    """What the rewrite sets, in document order (the disk format, which the lane changes, not)."""
    root = etree.fromstring(xml.encode())
    view = [
        ("devices/*/driver", {"iommu": e.get("iommu", "")})
        for e in root.iterfind("devices/*/driver")
    ]
    for path in ("devices/interface/rom", "features/gic", "os/loader", "os/nvram"):
        view.extend((path, attributes(e)) for e in root.iterfind(path))
    view.extend(
        ("devices/memballoon", {"model": e.get("model", "")})
        for e in root.iterfind("devices/memballoon")
    )
    return view


@pytest.mark.parametrize("dialect", DIALECTS, ids=[d.value for d in DIALECTS])
def test_adaptation_keeps_every_realm_property(tmp_path: Path, dialect: Dialect) -> None:
    for label, case in _cases():
        folder = tmp_path / label
        folder.mkdir()
        rewritten = case.rewritten(dialect)
        adapted = adapt_for_tcg(rewritten, name="n", files=_files(folder))
        assert realm_problems(adapted.xml) == [], (label, adapted.changes)
        assert _realm_view(adapted.xml) == _realm_view(rewritten), label
        root = etree.fromstring(adapted.xml.encode())
        assert root.get("type") == "qemu"
        assert root.findtext("cpu/model") == TCG_CPU_MODEL
        assert root.find("cpu/topology") is not None
        assert root.find("launchSecurity") is None
        values = [a.get("value", "") for a in root.iter(f"{{{QEMU_NAMESPACE}}}arg")]
        assert not any(v.startswith(("rme-guest", "confidential-guest-support")) for v in values)
        assert root.findtext("os/kernel") == "/k/vmlinuz"


def test_adaptation_does_not_make_a_plain_domain_look_like_a_realm(tmp_path: Path) -> None:
    for label, case in _cases():
        folder = tmp_path / label
        folder.mkdir()
        adapted = adapt_for_tcg(case.domain_xml, name="n", files=_files(folder))
        problems = realm_problems(adapted.xml)
        assert any("iommu='on'" in p for p in problems), (label, problems)
        assert _realm_view(adapted.xml) == _realm_view(case.domain_xml), label


def test_adaptation_keeps_other_qemu_arguments(tmp_path: Path) -> None:
    """Only the rme-guest / confidential-guest-support pairs go; a user's own arguments stay."""
    case = own_cases()["kernel"]
    root = etree.fromstring(case.rewritten(Dialect.QEMU_COMMANDLINE).encode())
    block = root.find(f"{{{QEMU_NAMESPACE}}}commandline")
    assert block is not None
    for value in ("-device", "pvpanic-pci"):
        etree.SubElement(block, f"{{{QEMU_NAMESPACE}}}arg", value=value)
    adapted = adapt_for_tcg(
        etree.tostring(root, encoding="unicode"), name="n", files=_files(tmp_path)
    )
    kept = [
        a.get("value")
        for a in etree.fromstring(adapted.xml.encode()).iter(f"{{{QEMU_NAMESPACE}}}arg")
    ]
    assert kept == ["-device", "pvpanic-pci"]


def test_every_disk_is_an_existing_file(tmp_path: Path) -> None:
    for label, case in _cases():
        folder = tmp_path / label
        folder.mkdir()
        adapted = adapt_for_tcg(case.rewritten(Dialect.VEP), name="n", files=_files(folder))
        for disk in etree.fromstring(adapted.xml.encode()).iterfind("devices/disk"):
            source = disk.find("source")
            assert disk.get("type") == "file" and source is not None
            assert Path(source.get("file", "")).parent == folder
            assert Path(source.get("file", "")).is_file()


def test_init_reads_bit_33() -> None:
    """sysfs prints feature bit N as character N+1 of the features line."""
    assert ACCESS_PLATFORM_BIT == 33
    assert "cut -c34 " in init_script()
