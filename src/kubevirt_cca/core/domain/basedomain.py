"""A built-in arm64 domain, shaped like what virt-launcher generates for a VMI.

``kubevirt-cca render`` starts from it when no ``--domain`` is given, so a VM owner can see what
the Realm rewrite will do to their VMI without a cluster. It is not KubeVirt's converter: it
covers the common parts (name, memory, CPU topology, disks, interfaces, firmware or direct kernel
boot, the usual virtio devices), uses KubeVirt's paths and aliases, and validates against
libvirt's schema.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from lxml import etree

from kubevirt_cca.constants import QEMU_NAMESPACE
from kubevirt_cca.core.vmi.request import Template
from kubevirt_cca.errors import ManifestError

PFLASH_FIRMWARE = "/usr/share/AAVMF/AAVMF_CODE.fd"
PFLASH_VARS_TEMPLATE = "/usr/share/AAVMF/AAVMF_VARS.fd"
DEFAULT_MEMORY = "1Gi"
VIRTIO_MODEL = "virtio-non-transitional"

_QUANTITY = re.compile(r"\A([0-9]+(?:\.[0-9]+)?)([KMGTPE]i?|k|m)?\Z")
MAX_QUANTITY = 2**63  # Kubernetes quantities are int64
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}


def parse_quantity(value: Any, *, field: str) -> int:
    """A Kubernetes memory quantity (``256Mi``, ``1G``, ``1073741824``) in bytes."""
    text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else None
    match = _QUANTITY.match(text) if text is not None else None
    if match is None or match.group(2) == "m":
        raise ManifestError(
            f"{field}: expected a memory quantity such as 256Mi or 2Gi, got {value!r}"
        )
    number, suffix = match.groups()
    factor = _BINARY.get(suffix or "", _DECIMAL.get(suffix or "", 1))
    size = float(number) * factor
    if not size < MAX_QUANTITY:  # also an infinity: "9" * 400 + "Gi" is one as a float
        raise ManifestError(
            f"{field}: {_shown(value)} is more memory than a quantity can say (at most 8Ei)"
        )
    return int(size)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def base_domain(template: Template, *, name: str, namespace: str) -> str:
    """The arm64 domain XML virt-launcher would generate for ``template`` (before any hook)."""
    spec = template.spec
    domain_spec = _mapping(spec.get("domain"))
    devices_spec = _mapping(domain_spec.get("devices"))
    uid = str(_mapping(template.metadata).get("uid") or "00000000-0000-4000-8000-000000000000")

    root = etree.Element("domain", type="kvm", nsmap={"qemu": QEMU_NAMESPACE})
    etree.SubElement(root, "name").text = f"{namespace}_{name}"
    etree.SubElement(root, "memory", unit="b").text = str(_memory_bytes(template, domain_spec))
    _os(root, domain_spec, name=name)
    _sysinfo(root, uid)
    devices = etree.SubElement(root, "devices")
    _disks(devices, template, devices_spec, name=name, namespace=namespace)
    _interfaces(devices, spec, devices_spec)
    _standard_devices(devices, devices_spec, uid)
    clock = etree.SubElement(root, "clock", offset="utc")
    etree.SubElement(clock, "timer", name="rtc", tickpolicy="catchup")
    metadata = etree.SubElement(root, "metadata")
    kubevirt_ns: Any = {None: "http://kubevirt.io"}  # a default namespace, as KubeVirt writes it
    kubevirt = etree.SubElement(metadata, "{http://kubevirt.io}kubevirt", nsmap=kubevirt_ns)
    etree.SubElement(kubevirt, "{http://kubevirt.io}uid").text = uid
    features = etree.SubElement(root, "features")
    if root.find("os/loader") is not None:
        # libvirt allows ACPI on aarch64 only with UEFI; direct kernel boot gets a device tree.
        etree.SubElement(features, "acpi")
    sockets, cores, threads = _topology(domain_spec)
    cpu = etree.SubElement(root, "cpu", mode="host-passthrough")
    etree.SubElement(cpu, "topology", sockets=str(sockets), cores=str(cores), threads=str(threads))
    etree.SubElement(root, "vcpu", placement="static").text = str(sockets * cores * threads)
    etree.indent(root, space="  ")
    return etree.tostring(root, encoding="unicode") + "\n"


def guest_memory_bytes(template: Template) -> int:
    """The guest memory a VMI gets: ``memory.guest``, else the memory request, else 1Gi."""
    return _memory_bytes(template, _mapping(template.spec.get("domain")))


def vcpu_count(template: Template) -> int:
    """The vCPUs a VMI gets: sockets x cores x threads of ``spec.domain.cpu`` (1 each if unset)."""
    sockets, cores, threads = _topology(_mapping(template.spec.get("domain")))
    return sockets * cores * threads


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _memory_bytes(template: Template, domain_spec: Mapping[str, Any]) -> int:
    memory = _mapping(domain_spec.get("memory"))
    if "guest" in memory:
        return parse_quantity(memory["guest"], field=template.path("spec.domain.memory.guest"))
    requests = _mapping(_mapping(domain_spec.get("resources")).get("requests"))
    if "memory" in requests:
        return parse_quantity(
            requests["memory"], field=template.path("spec.domain.resources.requests.memory")
        )
    return parse_quantity(DEFAULT_MEMORY, field="default")


def _topology(domain_spec: Mapping[str, Any]) -> tuple[int, int, int]:
    cpu = _mapping(domain_spec.get("cpu"))

    def count(key: str) -> int:
        value = cpu.get(key, 1)
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 1

    return count("sockets"), count("cores"), count("threads")


def _os(root: etree._Element, domain_spec: Mapping[str, Any], *, name: str) -> None:
    os_element = etree.SubElement(root, "os")
    etree.SubElement(os_element, "type", arch="aarch64", machine="virt").text = "hvm"
    etree.SubElement(os_element, "smbios", mode="sysinfo")
    kernel_boot = _mapping(_mapping(domain_spec.get("firmware")).get("kernelBoot"))
    container = _mapping(kernel_boot.get("container"))
    # KubeVirt's arm64 default is UEFI, also with firmware.kernelBoot: the firmware then starts
    # the kernel (checked against KubeVirt's converter, tests/peers/kubevirt).
    etree.SubElement(
        os_element, "loader", readonly="yes", secure="no", type="pflash"
    ).text = PFLASH_FIRMWARE
    etree.SubElement(
        os_element, "nvram", template=PFLASH_VARS_TEMPLATE
    ).text = f"/var/lib/libvirt/qemu/nvram/{_safe_file(name)}_VARS.fd"
    if container.get("kernelPath"):
        base = "/var/run/kubevirt-ephemeral-disks/kernel-boot"
        etree.SubElement(os_element, "kernel").text = f"{base}/kernel"
        if container.get("initrdPath"):
            etree.SubElement(os_element, "initrd").text = f"{base}/initrd"
        if isinstance(kernel_boot.get("kernelArgs"), str):
            etree.SubElement(os_element, "cmdline").text = kernel_boot["kernelArgs"]


def _sysinfo(root: etree._Element, uid: str) -> None:
    sysinfo = etree.SubElement(root, "sysinfo", type="smbios")
    system = etree.SubElement(sysinfo, "system")
    etree.SubElement(system, "entry", name="uuid").text = uid


def _volume_source(
    volume: Mapping[str, Any], disk_name: str, *, name: str, namespace: str
) -> tuple[str, str]:
    """The file and format virt-launcher uses for a volume type."""
    safe = _safe_file(disk_name)
    if "containerDisk" in volume:
        return f"/var/run/kubevirt-ephemeral-disks/disk-data/{safe}/disk.qcow2", "qcow2"
    if "cloudInitNoCloud" in volume:
        return (
            f"/var/run/kubevirt-ephemeral-disks/cloud-init-data/{_safe_file(namespace)}/"
            f"{_safe_file(name)}/noCloud.iso"
        ), "raw"
    if "cloudInitConfigDrive" in volume:
        return (
            f"/var/run/kubevirt-ephemeral-disks/cloud-init-data/{_safe_file(namespace)}/"
            f"{_safe_file(name)}/configdrive.iso"
        ), "raw"
    if "emptyDisk" in volume:
        return f"/var/run/kubevirt-ephemeral-disks/empty-disks/{safe}.qcow2", "qcow2"
    if "configMap" in volume:
        return f"/var/run/kubevirt-private/config-map-disks/{safe}.iso", "raw"
    if "secret" in volume:
        return f"/var/run/kubevirt-private/secret-disks/{safe}.iso", "raw"
    if "serviceAccount" in volume:
        return "/var/run/kubevirt-private/service-account-disk/service-account.iso", "raw"
    return f"/var/run/kubevirt-private/vmi-disks/{safe}/disk.img", "raw"


def _disks(
    devices: etree._Element,
    template: Template,
    devices_spec: Mapping[str, Any],
    *,
    name: str,
    namespace: str,
) -> None:
    volumes = {
        v.get("name"): v for v in template.spec.get("volumes") or [] if isinstance(v, Mapping)
    }
    counters = {"vd": 0, "sd": 0}
    for disk_spec in devices_spec.get("disks") or []:
        if not isinstance(disk_spec, Mapping) or not isinstance(disk_spec.get("name"), str):
            continue
        disk_name = disk_spec["name"]
        device = next((d for d in ("disk", "cdrom", "lun") if d in disk_spec), "disk")
        bus = _mapping(disk_spec.get(device)).get("bus") or (
            "scsi" if device == "cdrom" else "virtio"
        )
        prefix = "vd" if bus == "virtio" else "sd"
        path, fmt = _volume_source(
            _mapping(volumes.get(disk_name)), disk_name, name=name, namespace=namespace
        )
        disk = etree.SubElement(devices, "disk", device=device, type="file")
        if bus == "virtio":
            disk.set("model", VIRTIO_MODEL)
        etree.SubElement(disk, "source", file=path)
        etree.SubElement(disk, "target", bus=str(bus), dev=prefix + _letters(counters[prefix]))
        counters[prefix] += 1
        etree.SubElement(disk, "driver", error_policy="stop", name="qemu", type=fmt)
        if device == "cdrom":
            etree.SubElement(disk, "readonly")
        etree.SubElement(disk, "alias", name=f"ua-{disk_name}")
    # KubeVirt always adds a virtio-SCSI controller (hot-plugged volumes attach to it).
    etree.SubElement(devices, "controller", type="scsi", index="0", model=VIRTIO_MODEL)


def _interfaces(
    devices: etree._Element, spec: Mapping[str, Any], devices_spec: Mapping[str, Any]
) -> None:
    interfaces = devices_spec.get("interfaces")
    if interfaces is None:
        interfaces = (
            []
            if devices_spec.get("autoattachPodInterface") is False or spec.get("networks") == []
            else [{"name": "default"}]
        )
    for index, interface_spec in enumerate(interfaces or []):
        if not isinstance(interface_spec, Mapping):
            continue
        interface = etree.SubElement(devices, "interface", type="ethernet")
        mac = interface_spec.get("macAddress")
        if isinstance(mac, str) and re.fullmatch(r"([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}", mac):
            etree.SubElement(interface, "mac", address=mac)
        etree.SubElement(interface, "target", dev=f"tap{index}", managed="no")
        model = interface_spec.get("model") or "virtio"
        etree.SubElement(interface, "model", type=VIRTIO_MODEL if model == "virtio" else str(model))
        etree.SubElement(interface, "alias", name=f"ua-{interface_spec.get('name', index)}")


def _standard_devices(devices: etree._Element, devices_spec: Mapping[str, Any], uid: str) -> None:
    private = f"/var/run/kubevirt-private/{_safe_file(uid)}"
    etree.SubElement(devices, "controller", type="usb", index="0", model="qemu-xhci")
    if devices_spec.get("autoattachSerialConsole") is not False:
        # KubeVirt adds the virtio-serial controller with the serial console only; the guest
        # agent channel below stays either way (libvirt then adds the controller itself).
        etree.SubElement(devices, "controller", type="virtio-serial", index="0", model=VIRTIO_MODEL)
    channel = etree.SubElement(devices, "channel", type="unix")
    etree.SubElement(channel, "target", type="virtio", name="org.qemu.guest_agent.0")
    inputs = [i for i in devices_spec.get("inputs") or [] if isinstance(i, Mapping)]
    for input_spec in inputs:
        bus = str(input_spec.get("bus") or "usb")
        element = etree.SubElement(
            devices, "input", type=str(input_spec.get("type", "tablet")), bus=bus
        )
        if bus == "virtio":
            element.set("model", "virtio")
        etree.SubElement(element, "alias", name=f"ua-{input_spec.get('name', 'input')}")
    if devices_spec.get("autoattachGraphicsDevice") is not False:
        video = etree.SubElement(devices, "video")
        etree.SubElement(video, "model", type="virtio", heads="1")
        graphics = etree.SubElement(devices, "graphics", type="vnc")
        etree.SubElement(graphics, "listen", type="socket", socket=f"{private}/virt-vnc")
        if not inputs:
            etree.SubElement(devices, "input", type="tablet", bus="usb")
        etree.SubElement(devices, "input", type="keyboard", bus="usb")
    if devices_spec.get("autoattachSerialConsole") is not False:
        serial = etree.SubElement(devices, "serial", type="unix")
        etree.SubElement(serial, "source", mode="bind", path=f"{private}/virt-serial0")
        etree.SubElement(serial, "target", port="0")
        console = etree.SubElement(devices, "console", type="pty")
        etree.SubElement(console, "target", type="serial", port="0")
    if "rng" in devices_spec:
        rng = etree.SubElement(devices, "rng", model=VIRTIO_MODEL)
        etree.SubElement(rng, "backend", model="random").text = "/dev/urandom"
    if devices_spec.get("autoattachMemBalloon") is False:
        etree.SubElement(devices, "memballoon", model="none")
    else:
        balloon = etree.SubElement(
            devices, "memballoon", model=VIRTIO_MODEL, freePageReporting="on"
        )
        etree.SubElement(balloon, "stats", period="10")


def _letters(index: int) -> str:
    """0 → a, 25 → z, 26 → aa: the suffixes of vda, vdb, ..."""
    out = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        out = chr(ord("a") + rest) + out
    return out


def _safe_file(text: str) -> str:
    """A path segment that cannot climb out of its folder."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", text)
    return cleaned if cleaned not in ("", ".", "..") else "_"
