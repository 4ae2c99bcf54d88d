"""The Realm rewrite: libvirt domain XML in, the same domain made into an Arm CCA Realm out.

Every rule below has its reason in ``docs/rewrite.md``. In short, a Realm needs:

* launch security per dialect (``vep``, ``openeuler``, ``qemu-commandline``);
* firmware loaded as ROM from the CCA firmware, no NVRAM (direct kernel boot without a loader
  keeps having no loader);
* no option ROM on any NIC (``<rom enabled='no'/>``);
* ``iommu='on'`` on every virtio device, since a Realm guest refuses virtio devices without
  VIRTIO_F_ACCESS_PLATFORM;
* no memory balloon (its guest driver can never offer that feature): ``<memballoon model='none'/>``;
* GICv3 and the ``host-passthrough`` CPU;
* no empty ``name`` on a device ``<driver>``: KubeVirt re-serialises its own spec between the
  defines of one start, and its interface driver type writes ``name=""``, which libvirt refuses;
* no ACPI (libvirt allows it on aarch64 only with pflash firmware): the guest gets a device tree.

The rewrite is idempotent and leaves every other element and attribute as it was. It refuses a
document that is not a libvirt domain, a domain that is not aarch64 or not for KVM (``<domain
type='qemu'>`` is emulation), a domain that already carries launch security of another kind,
and a domain with a foreign QEMU argument that is not known to be harmless
(``core/domain/qemuargs.py``); what remains of ``<qemu:commandline>`` is one block, with the
``qemu-commandline`` dialect's own arguments last. Values go into the tree through
lxml, never by string formatting of XML.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from lxml import etree

from kubevirt_cca.constants import QEMU_NAMESPACE
from kubevirt_cca.core.cluster.settings import Dialect, Settings
from kubevirt_cca.core.domain.qemuargs import (
    CGS_VALUE,
    QEMU,
    RME_OBJECT_ID,
    commandline_blocks,
    own_arguments,
)
from kubevirt_cca.core.vmi.request import CCARequest
from kubevirt_cca.core.wire.libvirtxml import parse_document
from kubevirt_cca.core.wire.xmltree import append, drop_attribute, place_after, remove
from kubevirt_cca.errors import DomainError

_RME_OBJECT_PREFIX = "rme-guest,"
_BASE64 = re.compile(r"\A[A-Za-z0-9+/]+={0,2}\Z")


def rewrite_domain(domain_xml: str | bytes, request: CCARequest, settings: Settings) -> str:
    """Return ``domain_xml`` made into a Realm for ``request`` under ``settings``."""
    root = parse_domain(domain_xml)
    make_realm(root, request, settings)
    return etree.tostring(root, encoding="unicode")


def parse_domain(domain_xml: str | bytes) -> etree._Element:
    """Parse a libvirt domain document, refusing anything else with a clear message."""
    return parse_document(
        domain_xml, root="domain", name="domain XML", kind="a libvirt domain", error=DomainError
    )


def make_realm(root: etree._Element, request: CCARequest, settings: Settings) -> None:
    """Rewrite a parsed domain in place (see the module docstring for the rules)."""
    _check_architecture(root)
    _check_accelerator(root)
    _check_launch_security(root)
    own_qemu_arguments = own_arguments(root)  # refuses foreign QEMU arguments
    _set_firmware(root, settings.firmware)
    _disable_nic_roms(root)
    if settings.virtio_iommu:
        _set_virtio_iommu(root)
    _drop_empty_driver_names(root)
    _remove_balloon(root)
    _set_gic_v3(root)
    _set_host_passthrough(root)
    _remove_cca_launch_security(root)
    for argument in own_qemu_arguments:
        remove(argument)
    _merge_commandlines(root)
    _WRITERS[settings.dialect](root, request)


# --- refusals ----------------------------------------------------------------------------------


def domain_architecture(root: etree._Element) -> str | None:
    """The ``arch`` of ``<os><type>``, or ``None`` when the domain does not say."""
    os_type = root.find("os/type")
    return None if os_type is None else os_type.get("arch")


def _check_architecture(root: etree._Element) -> None:
    arch = domain_architecture(root)
    if arch != "aarch64":
        found = "declares no architecture" if arch is None else f"is for {arch}"
        raise DomainError(
            f"the domain {found} (<os><type arch=...>); a CCA Realm needs an aarch64 domain"
        )


def _check_accelerator(root: etree._Element) -> None:
    """``<domain type='kvm'>``: any other type is another accelerator (``qemu`` is TCG)."""
    kind = root.get("type")
    if kind != "kvm":
        found = "has no type" if kind is None else f"is of type {kind!r}"
        raise DomainError(
            f"the domain {found} (<domain type=...>); a CCA Realm runs only under KVM "
            "(type='kvm'), and 'qemu' is emulation (KubeVirt writes it with useEmulation)"
        )


def _check_launch_security(root: etree._Element) -> None:
    for element in root.findall("launchSecurity"):
        kind = element.get("type")
        if kind != "cca":
            raise DomainError(
                f"the domain already has <launchSecurity type='{kind}'>; "
                "a CCA Realm cannot combine it with another kind of launch security"
            )


# --- firmware ----------------------------------------------------------------------------------


def _set_firmware(root: etree._Element, firmware: str) -> None:
    os_element = root.find("os")
    if os_element is None:
        os_element = append(root, "os")
    loader = os_element.find("loader")
    if loader is None and os_element.find("kernel") is not None:
        return  # direct kernel boot: no firmware to replace
    if loader is None:
        loader = append(os_element, "loader")
        place_after(os_element, loader, "type")
    loader.set("readonly", "yes")
    loader.set("type", "rom")
    loader.text = firmware
    for nvram in os_element.findall("nvram"):
        remove(nvram)
    # Firmware auto-selection would pick a descriptor's (non-CCA) firmware over the ROM above.
    drop_attribute(os_element, "firmware")
    for selection in os_element.findall("firmware"):
        remove(selection)


# --- devices -----------------------------------------------------------------------------------


def _disable_nic_roms(root: etree._Element) -> None:
    for interface in root.iterfind("devices/interface"):
        rom = interface.find("rom")
        if rom is None:
            rom = append(interface, "rom")
        # libvirt refuses ROM tuning (bar, file) on a disabled ROM.
        for tuning in ("bar", "file"):
            drop_attribute(rom, tuning)
        rom.set("enabled", "no")


def _is_virtio_model(value: str | None) -> bool:
    return value is not None and value.startswith("virtio")


def _disk_bus(target: etree._Element) -> str | None:
    """A disk's bus; libvirt takes a missing one from the target name ("vd..." is virtio)."""
    bus = target.get("bus")
    if bus is None and (target.get("dev") or "").startswith("vd"):
        return "virtio"
    return bus


def _virtio_devices(devices: etree._Element) -> Iterator[etree._Element]:
    """Every device element that is a virtio device and takes a ``<driver>`` with ``iommu``."""
    for device in devices:
        tag = device.tag
        if tag == "disk":
            target = device.find("target")
            if target is not None and _disk_bus(target) == "virtio":
                yield device
        elif tag == "controller":
            if device.get("type") == "virtio-serial" or (
                device.get("type") == "scsi" and _is_virtio_model(device.get("model"))
            ):
                yield device
        elif tag == "interface":
            model = device.find("model")
            if model is not None and _is_virtio_model(model.get("type")):
                yield device
        elif tag == "rng":
            if _is_virtio_model(device.get("model")):
                yield device
        elif tag == "vsock":
            # virtio is a vsock's only model, and libvirt's default when none is given.
            if device.get("model") is None or _is_virtio_model(device.get("model")):
                yield device
        elif tag == "input":
            if device.get("bus") == "virtio":
                yield device
        elif tag == "video":
            model = device.find("model")
            if model is not None and model.get("type") == "virtio":
                yield device
        elif tag == "filesystem":
            yield device  # filesystems reach the guest through virtio (9p or virtiofs)


def _set_virtio_iommu(root: etree._Element) -> None:
    devices = root.find("devices")
    if devices is None:
        return
    _add_implicit_virtio_serial(devices)
    for device in _virtio_devices(devices):
        driver = device.find("driver")
        if driver is None:
            driver = append(device, "driver")
        driver.set("iommu", "on")


def _add_implicit_virtio_serial(devices: etree._Element) -> None:
    """Name the virtio-serial controller libvirt would add on its own (docs/rewrite.md, rule 6).

    A ``<channel>`` (KubeVirt's guest agent channel) or a virtio console needs a virtio-serial
    controller; when the domain names none, libvirt adds ``<controller type='virtio-serial'/>``
    at define time, without ``iommu='on'``, and a Realm guest refuses that device. KubeVirt
    leaves it out when the serial console is off (``autoattachSerialConsole: false``).
    """
    needs_one = any(
        target is not None and target.get("type") == "virtio"
        for target in (
            element.find("target") for element in devices if element.tag in ("channel", "console")
        )
    )
    if needs_one and devices.find("controller[@type='virtio-serial']") is None:
        controller = append(devices, "controller")
        controller.set("type", "virtio-serial")
        controller.set("index", "0")


def _drop_empty_driver_names(root: etree._Element) -> None:
    """Remove ``name=""`` from device drivers (docs/rewrite.md, rule 12).

    From its second define on, virt-launcher hands the hook its own re-serialised spec, in which
    an interface's ``<driver iommu='on'/>`` comes back as ``<driver name="" iommu="on"/>`` (the
    ``name`` field of KubeVirt's InterfaceDriver has no omitempty). libvirt refuses an empty
    driver name ("Invalid value for attribute 'name' in element 'driver': ''"), so the Realm
    would fail to start at the second define.
    """
    for driver in root.iterfind("devices/*/driver"):
        if driver.get("name") == "":
            drop_attribute(driver, "name")


def _remove_balloon(root: etree._Element) -> None:
    devices = root.find("devices")
    if devices is None:
        devices = append(root, "devices")
    balloons = devices.findall("memballoon")
    if not balloons:
        # libvirt adds a virtio balloon to a QEMU domain that names none.
        append(devices, "memballoon").set("model", "none")
        return
    for balloon in balloons:
        if balloon.get("model") == "none" and len(balloon) == 0 and len(balloon.attrib) == 1:
            continue
        balloon.attrib.clear()
        balloon.set("model", "none")
        for child in list(balloon):
            balloon.remove(child)
        balloon.text = None


# --- features and CPU --------------------------------------------------------------------------


def _set_gic_v3(root: etree._Element) -> None:
    features = root.find("features")
    if features is None:
        features = append(root, "features")
    # libvirt accepts ACPI on aarch64 only with pflash UEFI ("ACPI requires UEFI on this
    # architecture"), which a Realm cannot have: the guest gets a device tree instead.
    for acpi in features.findall("acpi"):
        remove(acpi)
    gic = features.find("gic")
    if gic is None:
        gic = append(features, "gic")
    gic.set("version", "3")


def _set_host_passthrough(root: etree._Element) -> None:
    cpu = root.find("cpu")
    if cpu is None:
        cpu = append(root, "cpu")
    cpu.set("mode", "host-passthrough")
    # A model, vendor or match belongs to custom CPUs only; topology, features, NUMA stay.
    drop_attribute(cpu, "match")
    for child_tag in ("model", "vendor"):
        for child in cpu.findall(child_tag):
            remove(child)


# --- launch security per dialect ---------------------------------------------------------------


def _remove_cca_launch_security(root: etree._Element) -> None:
    for element in root.findall("launchSecurity"):
        if element.get("type") == "cca":
            remove(element)


def _merge_commandlines(root: etree._Element) -> None:
    """Leave at most one ``<qemu:commandline>``: the first, holding every argument in order.

    What is left after :func:`own_arguments` is harmless, and one block with our arguments at
    its end keeps ours last however libvirt or KubeVirt reads several blocks.
    """
    blocks = commandline_blocks(root)
    for block in blocks[1:]:
        for arg in block.findall(f"{QEMU}arg"):
            remove(arg)
            append(blocks[0], f"{QEMU}arg").set("value", arg.get("value", ""))
        remove(block)
    if blocks and blocks[0].find(f"{QEMU}arg") is None:
        remove(blocks[0])


def _write_vep(root: etree._Element, request: CCARequest) -> None:
    element = append(root, "launchSecurity")
    element.set("type", "cca")
    if request.measurement_log is not None:
        element.set("measurement-log", "yes" if request.measurement_log else "no")
    if request.measurement_algo is not None:
        append(element, "measurement-algo").text = request.measurement_algo
    if request.personalization_value is not None:
        append(element, "personalization-value").text = request.personalization_value


def _write_openeuler(root: etree._Element, request: CCARequest) -> None:
    element = append(root, "launchSecurity")
    element.set("type", "cca")
    if request.measurement_algo is not None:
        append(element, "measurement-algo").text = request.measurement_algo
    if request.personalization_value is not None:
        append(element, "personalization-value").text = request.personalization_value
    if request.measurement_log is not None:
        append(element, "measurement-log").set("state", "on" if request.measurement_log else "off")


def rme_guest_properties(request: CCARequest) -> list[tuple[str, str]]:
    """The QEMU ``rme-guest`` object's properties for ``request``, in a fixed order."""
    properties = [("id", RME_OBJECT_ID)]
    if request.measurement_algo is not None:
        properties.append(("measurement-algorithm", request.measurement_algo))
    if request.personalization_value is not None:
        # The parser only lets canonical base64 through; re-check before it reaches a command
        # line, where a comma would start a new property.
        if not _BASE64.match(request.personalization_value):
            raise DomainError("personalization value is not canonical base64")
        properties.append(("personalization-value", request.personalization_value))
    if request.measurement_log:
        properties.append(("measurement-log", "on"))
    return properties


def _write_qemu_commandline(root: etree._Element, request: CCARequest) -> None:
    blocks = commandline_blocks(root)
    if blocks:
        block = blocks[0]
    else:
        block = append(root, f"{QEMU}commandline", nsmap={"qemu": QEMU_NAMESPACE})
    rme_object = _RME_OBJECT_PREFIX + ",".join(
        f"{key}={value}" for key, value in rme_guest_properties(request)
    )
    for value in ("-object", rme_object, "-machine", CGS_VALUE):
        append(block, f"{QEMU}arg").set("value", value)


_WRITERS: dict[Dialect, Callable[[etree._Element, CCARequest], None]] = {
    Dialect.VEP: _write_vep,
    Dialect.OPENEULER: _write_openeuler,
    Dialect.QEMU_COMMANDLINE: _write_qemu_commandline,
}
