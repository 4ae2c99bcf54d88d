"""What the rewrite tests share: the domains to test, schema validation, "untouched" views."""

from __future__ import annotations

import copy
import functools
import itertools
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import cast

import pytest
import yaml
from lxml import etree

from kubevirt_cca.constants import QEMU_NAMESPACE
from kubevirt_cca.core.cluster.settings import Dialect
from kubevirt_cca.core.domain.basedomain import base_domain
from kubevirt_cca.core.vmi.request import find_template
from tests.conftest import DATA, KUBEVIRT_FIXTURES, LIBVIRT_SCHEMAS, ROOT

Q = "{%s}" % QEMU_NAMESPACE  # noqa: UP031
OVERLAYS = {
    Dialect.VEP: ROOT / "schemas" / "cca-vep.rng",
    Dialect.OPENEULER: ROOT / "schemas" / "cca-openeuler.rng",
    # libvirt's own schema knows <qemu:commandline>.
    Dialect.QEMU_COMMANDLINE: LIBVIRT_SCHEMAS / "domain.rng",
}


def own_domains() -> dict[str, str]:
    """The project's own arm64 test domains, and the built-in domains of the examples."""
    domains = {p.stem: p.read_text() for p in sorted((DATA / "domains").glob("*.xml"))}
    for example in sorted((ROOT / "examples").glob("*.yaml")):
        manifest = yaml.safe_load(example.read_text())
        metadata = manifest.get("metadata", {})
        domains[f"builtin-{example.stem}"] = base_domain(
            find_template(manifest),
            name=metadata.get("name", "x"),
            namespace=metadata.get("namespace", "default"),
        )
    return domains


def shared_domains() -> dict[str, str]:
    """KubeVirt's arm64 domains from ../shared (empty when ../shared is absent)."""
    folder = KUBEVIRT_FIXTURES / "domains"
    names = ("kubevirt-arm64.xml", "kubevirt-api-arm64.xml")
    return {f"shared-{n[:-4]}": (folder / n).read_text() for n in names if (folder / n).exists()}


def schema_available() -> bool:
    return (LIBVIRT_SCHEMAS / "domain.rng").exists()


def require_schema() -> None:
    if not schema_available():
        pytest.skip(
            "libvirt's RNG schema is not installed "
            "(apt-get install libvirt-clients; .ci/run does this)"
        )


@functools.cache
def relaxng(path: Path) -> etree.RelaxNG:
    return etree.RelaxNG(etree.parse(str(path)))


def schema_errors(xml: str | etree._Element, dialect: Dialect | None = None) -> list[str]:
    """libvirt's RNG errors for a domain (with the dialect's overlay), empty when it validates."""
    schema = relaxng(OVERLAYS[dialect] if dialect else LIBVIRT_SCHEMAS / "domain.rng")
    doc = etree.fromstring(xml) if isinstance(xml, str) else xml
    if schema.validate(doc):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log]


def virt_xml_validate(path: Path) -> subprocess.CompletedProcess[str]:
    """libvirt's own validation tool on a file."""
    tool = shutil.which("virt-xml-validate")
    if tool is None:
        pytest.skip("virt-xml-validate is not installed (Debian libvirt-clients)")
    return subprocess.run([tool, str(path), "domain"], capture_output=True, text=True, check=False)


def untouched_view(xml: str) -> bytes:
    """The domain minus everything the rewrite may change, canonicalised (C14N 2.0).

    Comparing this view of the input and of the output proves the rewrite changed nothing else.
    """
    root = etree.fromstring(xml)
    os_element = root.find("os")
    if os_element is not None:
        for tag in ("loader", "nvram", "firmware"):
            for element in os_element.findall(tag):
                os_element.remove(element)
        os_element.attrib.pop("firmware", "")
    devices = root.find("devices")
    if devices is not None:
        for rom in devices.findall("interface/rom"):
            rom.getparent().remove(rom)  # type: ignore[union-attr]
        for balloon in devices.findall("memballoon"):
            devices.remove(balloon)
        for driver in devices.iter("driver"):
            driver.attrib.pop("iommu", "")
            if driver.get("name") == "":  # rule 12: KubeVirt's re-serialised empty name
                driver.attrib.pop("name")
            if not driver.attrib and len(driver) == 0:
                driver.getparent().remove(driver)  # type: ignore[union-attr]
    features = root.find("features")
    if features is not None:
        for tag in ("gic", "acpi"):
            for element in features.findall(tag):
                features.remove(element)
        if not features.attrib and len(features) == 0:
            root.remove(features)
    cpu = root.find("cpu")
    if cpu is not None:
        for attribute in ("mode", "match"):
            cpu.attrib.pop(attribute, "")
        for tag in ("model", "vendor"):
            for element in cpu.findall(tag):
                cpu.remove(element)
        if not cpu.attrib and len(cpu) == 0:
            root.remove(cpu)
    for element in root.findall("launchSecurity"):
        root.remove(element)
    for block in root.findall(f"{Q}commandline"):
        args = block.findall(f"{Q}arg")
        for flag, value in itertools.pairwise(args):
            v = value.get("value", "")
            if (flag.get("value") == "-object" and v.startswith("rme-guest,")) or (
                flag.get("value") == "-machine" and v == "confidential-guest-support=rme0"
            ):
                block.remove(flag)
                block.remove(value)
        if len(block) == 0:
            root.remove(block)
    for element in root.iter():
        if isinstance(element.tag, str):
            element.text = element.text.strip() if element.text and element.text.strip() else None
            element.tail = None
    # lxml-stubs lack C14N 2.0's options (strip_text) and its bytes result.
    c14n2 = cast("Callable[..., bytes]", etree.tostring)
    return c14n2(root, method="c14n2", strip_text=True)


MINIMAL = """<domain type="kvm"><name>piece</name><memory>1048576</memory>
<os><type arch="aarch64" machine="virt">hvm</type></os><devices/></domain>"""


def in_minimal_domain(piece: etree._Element, *, device: bool) -> etree._Element:
    """``piece`` (an os, cpu, features, launchSecurity element or a device) in a valid domain."""
    root = etree.fromstring(MINIMAL)
    element = copy.deepcopy(piece)
    if device:
        root.find("devices").append(element)  # type: ignore[union-attr]
    elif element.tag == "os":
        root.replace(root.find("os"), element)  # type: ignore[arg-type]
    else:
        root.append(element)
    return root
