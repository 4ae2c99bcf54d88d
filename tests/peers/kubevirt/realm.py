"""Is a domain string valid for libvirt, and a Realm by every rule of docs/rewrite.md?

Written from docs/rewrite.md (rules 1-12 and the dialect forms), not from the rewrite's code.
The device-level rules reuse the boot lane's ``realm_problems`` (rules 3, 5, 6, 7, 8).
"""

from __future__ import annotations

import functools
import subprocess
import tempfile
from dataclasses import dataclass

from lxml import etree

from kubevirt_cca.constants import DEFAULT_CCA_FIRMWARE, QEMU_NAMESPACE
from kubevirt_cca.core.cluster.settings import Dialect
from kubevirt_cca.core.vmi.request import CCARequest
from tests.boot.domains import realm_problems
from tests.core.rewrite_support import schema_errors

Q = "{%s}" % QEMU_NAMESPACE  # noqa: UP031


def without_sysinfo(xml: str) -> etree._Element:
    """``xml`` minus ``<sysinfo>`` and ``<os><smbios>``.

    KubeVirt writes ``<sysinfo type='smbios'>`` with empty ``<system>``/``<bios>`` entries that
    libvirt 9.0's RNG rejects while libvirt's parser accepts them (``virsh define`` of the whole
    string proves that). It is KubeVirt's output, before and after our hook alike, and the
    rewrite does not touch it.
    """
    root = etree.fromstring(xml.encode())
    for sysinfo in root.findall("sysinfo"):
        root.remove(sysinfo)
    for smbios in root.findall("os/smbios"):
        smbios.getparent().remove(smbios)  # type: ignore[union-attr]
    return root


@functools.cache
def rng_errors(xml: str, dialect: Dialect) -> tuple[str, ...]:
    """libvirt's RNG with the dialect's overlay (schemas/), KubeVirt's sysinfo set aside.

    Cached: the later defines of a start are often the same string.
    """
    return tuple(schema_errors(without_sysinfo(xml), dialect))


@dataclass(frozen=True)
class LibvirtVerdict:
    """``virsh -c test:///default``: define's error (``None``: accepted) and libvirt's dumpxml."""

    error: str | None
    dumped: str


def virsh_define(xml: str, dialect: Dialect) -> LibvirtVerdict:
    """libvirt's own parser: define, then dumpxml (the domain with libvirt's implicit devices).

    libvirt 9.0 has no CCA launch security: for ``vep`` and ``openeuler`` the
    ``<launchSecurity type='cca'>`` element is taken out first (the RNG overlay checks it);
    ``qemu-commandline`` goes in whole.
    """
    root = etree.fromstring(xml.encode())
    if dialect is not Dialect.QEMU_COMMANDLINE:
        for security in root.findall("launchSecurity"):
            root.remove(security)
    return _virsh_define(etree.tostring(root), root.findtext("name") or "")


@functools.cache
def _virsh_define(document: bytes, name: str) -> LibvirtVerdict:
    with tempfile.NamedTemporaryFile("wb", suffix=".xml") as handle:
        handle.write(document)
        handle.flush()
        done = subprocess.run(
            ["virsh", "-q", "-c", "test:///default", f"define {handle.name}; dumpxml {name}"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    if done.returncode != 0:
        return LibvirtVerdict(error=done.stderr.strip() or done.stdout.strip(), dumped="")
    return LibvirtVerdict(error=None, dumped=done.stdout[done.stdout.index("<domain") :])


def _expected_vep(request: CCARequest) -> dict[str, object]:
    attributes = {"type": "cca"}
    if request.measurement_log is not None:
        attributes["measurement-log"] = "yes" if request.measurement_log else "no"
    children: list[tuple[str, dict[str, str], str | None]] = []
    if request.measurement_algo is not None:
        children.append(("measurement-algo", {}, request.measurement_algo))
    if request.personalization_value is not None:
        children.append(("personalization-value", {}, request.personalization_value))
    return {"attributes": attributes, "children": children}


def _expected_openeuler(request: CCARequest) -> dict[str, object]:
    children: list[tuple[str, dict[str, str], str | None]] = []
    if request.measurement_algo is not None:
        children.append(("measurement-algo", {}, request.measurement_algo))
    if request.personalization_value is not None:
        children.append(("personalization-value", {}, request.personalization_value))
    if request.measurement_log is not None:
        children.append(
            ("measurement-log", {"state": "on" if request.measurement_log else "off"}, None)
        )
    return {"attributes": {"type": "cca"}, "children": children}


def _launch_security(element: etree._Element) -> dict[str, object]:
    attributes: dict[str, str] = {str(k): str(v) for k, v in element.attrib.items()}
    return {
        "attributes": attributes,
        "children": [
            (
                child.tag,
                {str(k): str(v) for k, v in child.attrib.items()},
                child.text.strip() if child.text and child.text.strip() else None,
            )
            for child in element
            if isinstance(child.tag, str)
        ],
    }


def _rme_arguments(request: CCARequest) -> list[str]:
    properties = ["rme-guest", "id=rme0"]
    if request.measurement_algo is not None:
        properties.append(f"measurement-algorithm={request.measurement_algo}")
    if request.personalization_value is not None:
        properties.append(f"personalization-value={request.personalization_value}")
    if request.measurement_log:
        properties.append("measurement-log=on")
    return ["-object", ",".join(properties), "-machine", "confidential-guest-support=rme0"]


def realm_rule_problems(
    xml: str, *, dialect: Dialect, request: CCARequest, source: str
) -> list[str]:
    """Where ``xml`` breaks a rule of docs/rewrite.md; empty when it is a Realm by all of them.

    ``source`` is KubeVirt's domain before the hook: whether it boots a kernel directly and
    whether it has a loader decide what rules 3 and 4 expect.
    """
    root = etree.fromstring(xml.encode())
    before = etree.fromstring(source.encode())
    kernel_boot = before.find("os/kernel") is not None
    firmware_expected = not kernel_boot or before.find("os/loader") is not None
    problems = list(realm_problems(xml))
    if root.find("os/type") is None or root.find("os/type").get("arch") != "aarch64":  # type: ignore[union-attr]
        problems.append("rule 1: not an aarch64 domain")
    loader = root.find("os/loader")
    if kernel_boot and root.find("os/kernel") is None:
        problems.append("rule 4: the kernel of a direct kernel boot is gone")
    if not firmware_expected:
        if loader is not None:
            problems.append("rule 4: direct kernel boot without a loader got one")
    elif loader is None or (loader.text or "").strip() != DEFAULT_CCA_FIRMWARE:
        problems.append(f"rule 3: loader is not the CCA firmware {DEFAULT_CCA_FIRMWARE}")
    if root.find("os").get("firmware") is not None or root.find("os/firmware") is not None:  # type: ignore[union-attr]
        problems.append("rule 3: firmware auto-selection left in <os>")
    for rom in root.iterfind("devices/interface/rom"):
        if rom.get("bar") is not None or rom.get("file") is not None:
            problems.append("rule 5: ROM tuning left on a disabled ROM")
    if root.xpath("devices/*/driver[@name='']"):
        problems.append("rule 12: a device <driver> with an empty name")
    cpu = root.find("cpu")
    if cpu is None or cpu.get("mode") != "host-passthrough" or cpu.find("model") is not None:
        problems.append("rule 9: CPU is not host-passthrough without a model")
    if root.find("features/acpi") is not None:
        problems.append("rule 11: <acpi/> left in <features>")
    securities = root.findall("launchSecurity")
    arguments = [a.get("value") for a in root.iterfind(f"{Q}commandline/{Q}arg")]
    rme = [a for a in arguments if a and a.startswith("rme-guest")]
    if dialect is Dialect.QEMU_COMMANDLINE:
        if securities:
            problems.append("rule 10: qemu-commandline dialect with a <launchSecurity>")
        if len(rme) != 1:
            problems.append(f"rule 10: {len(rme)} rme-guest objects, expected 1")
        expected = _rme_arguments(request)
        found = [a for a in arguments if a in expected]
        if found != expected:
            problems.append(f"rule 10: rme-guest arguments {found}, expected {expected}")
    else:
        if rme:
            problems.append("rule 10: rme-guest arguments in a launchSecurity dialect")
        expected_security = (
            _expected_vep(request) if dialect is Dialect.VEP else _expected_openeuler(request)
        )
        if len(securities) != 1:
            problems.append(f"rule 10: {len(securities)} <launchSecurity> elements, expected 1")
        elif _launch_security(securities[0]) != expected_security:
            problems.append(
                f"rule 10: launchSecurity {_launch_security(securities[0])}, "
                f"expected {expected_security}"
            )
    return problems
