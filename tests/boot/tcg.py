"""The one place where the boot lane changes a rewritten domain before libvirt sees it.

``adapt_for_tcg`` is the whole list. Everything it does falls in one of four groups, and it
returns a line for each change it made, so a test (and its failure output) can say exactly what
differs from what the hook would hand libvirt on a CCA host:

1. What this libvirt (9.0, no CCA patches) and this QEMU (7.2, no ``rme-guest`` object) cannot
   know: the ``<launchSecurity>`` element, and for the ``qemu-commandline`` dialect the
   ``-object rme-guest,...`` and ``-machine confidential-guest-support=...`` argument pairs;
   and ``<features><acpi/>`` when the loader is not pflash, which stock libvirt refuses on
   aarch64 ("ACPI requires UEFI on this architecture"; docs/boot-proof.md, "Known gap").
2. What TCG emulation of aarch64 on an x86_64 machine forces: domain ``type='qemu'`` instead of
   ``kvm``, a named CPU model instead of ``host-passthrough`` (TCG has no host CPU to pass
   through), an explicit ``<emulator>``, and no free page reporting on a plain domain's balloon
   (it stalls TCG guests; the rewrite removes the balloon anyway).
3. What the host outside a virt-launcher pod forces: a user-mode NIC instead of a pod tap device
   (without multi-queue ``queues``, which user-mode NICs lack),
   file-backed disks that exist (fresh sparse raw files in the run folder, replacing KubeVirt's
   volume paths, block devices and qcow2 overlays), sockets and NVRAM in the run folder, one
   file-backed serial console the test reads, the lane's kernel, initramfs and command line
   (for a firmware-booted domain the firmware loads them from QEMU's fw_cfg), memory raised to a
   floor a Linux guest can boot in, and a unique name and UUID (with the SMBIOS UUID).
4. Artefacts of KubeVirt's converter test fixture (``kubevirt-arm64.xml`` is test data written
   for x86 and relabelled): x86-only features and timers no aarch64 libvirt accepts, CD-ROMs on
   the virtio bus (libvirt has no ejectable media there; they become virtio disks, keeping the
   rewrite's ``iommu='on'``), and its 8 MiB of memory (part of the floor above). The project's
   own domains carry none of these.

Nothing else is touched: ``iommu='on'``, ``<rom enabled='no'/>``, the balloon, GICv3, the
firmware ``<loader>`` and the absence of ``<nvram>`` reach libvirt exactly as the rewrite wrote
them, and the lane checks afterwards that libvirt kept them.
"""

from __future__ import annotations

import copy
import itertools
import uuid
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from kubevirt_cca.constants import QEMU_NAMESPACE

_QEMU = f"{{{QEMU_NAMESPACE}}}"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
EMULATOR = "/usr/bin/qemu-system-aarch64"
# cortex-a57 boots noticeably faster under TCG than 'max' (fewer features to emulate).
TCG_CPU_MODEL = "cortex-a57"
MEMORY_FLOOR_MIB = 256
DISK_SIZE = 1 << 20

_UNITS = {
    "b": 1,
    "bytes": 1,
    "KB": 10**3,
    "k": 2**10,
    "KiB": 2**10,
    "MB": 10**6,
    "M": 2**20,
    "MiB": 2**20,
    "GB": 10**9,
    "G": 2**30,
    "GiB": 2**30,
    "TB": 10**12,
    "T": 2**40,
    "TiB": 2**40,
}


@dataclass(frozen=True)
class BootFiles:
    """What the lane gives the guest and where host-side files of one domain go."""

    kernel: Path
    initrd: Path
    cmdline: str
    serial_log: Path
    folder: Path  # disk images, sockets and NVRAM of this domain; must exist


@dataclass(frozen=True)
class Adapted:
    """The domain libvirt gets, and one line per change ``adapt_for_tcg`` made."""

    xml: str
    changes: tuple[str, ...]


def adapt_for_tcg(domain_xml: str, *, name: str, files: BootFiles) -> Adapted:
    """Make a (rewritten or plain) KubeVirt arm64 domain bootable here; see the module doc."""
    root = etree.fromstring(domain_xml.encode(), _PARSER)
    changes: list[str] = []
    # 1. unknown to this libvirt / QEMU
    for element in root.findall("launchSecurity"):
        root.remove(element)
        changes.append(
            f"removed <launchSecurity type='{element.get('type')}'> "
            "(this libvirt has no CCA support)"
        )
    _remove_rme_arguments(root, changes)
    _drop_acpi_without_pflash(root, changes)
    # 2. forced by TCG
    if root.get("type") != "qemu":
        changes.append(f"domain type '{root.get('type')}' -> 'qemu' (TCG)")
        root.set("type", "qemu")
    _set_cpu_model(root, changes)
    devices = _child(root, "devices")
    for balloon in devices.iterfind("memballoon[@freePageReporting]"):
        # Only a plain domain has a balloon (the rewrite makes it model='none'). Under TCG its
        # free page reporting slowed boots two-fold and stalled one guest's init for > 60 s.
        del balloon.attrib["freePageReporting"]
        changes.append(
            "memballoon freePageReporting dropped (stalls TCG guests; the balloon itself stays)"
        )
    emulator = devices.find("emulator")
    if emulator is None:
        emulator = etree.Element("emulator")
        devices.insert(0, emulator)
    emulator.text = EMULATOR
    changes.append(f"<emulator>{EMULATOR}</emulator>")
    # 3. forced by the host outside a virt-launcher pod
    _child(root, "name").text = name
    _set_uuid(root, str(uuid.uuid4()))
    changes.append(f"name -> {name}, a fresh UUID (domains of one VMI boot side by side here)")
    _raise_memory(root, changes)
    _set_boot_files(root, files, changes)
    _user_mode_nics(devices, changes)
    _file_disks(devices, files.folder, changes)
    _file_serial(devices, files.serial_log, changes)
    _local_sockets(devices, files.folder, changes)
    # 4. artefacts of KubeVirt's converter test fixture (kubevirt-arm64.xml) that no aarch64
    #    libvirt accepts; absent from the project's own domains, so a no-op there
    _drop_x86_only(root, changes)
    etree.indent(root, space="  ")
    return Adapted(etree.tostring(root, encoding="unicode"), tuple(changes))


def _child(parent: etree._Element, tag: str) -> etree._Element:
    child = parent.find(tag)
    if child is None:
        child = etree.SubElement(parent, tag)
    return child


def _remove_rme_arguments(root: etree._Element, changes: list[str]) -> None:
    for block in root.findall(f"{_QEMU}commandline"):
        args = block.findall(f"{_QEMU}arg")
        for flag, value in itertools.pairwise(args):
            text = value.get("value", "")
            if (flag.get("value") == "-object" and text.startswith("rme-guest,")) or (
                flag.get("value") == "-machine" and text.startswith("confidential-guest-support=")
            ):
                block.remove(flag)
                block.remove(value)
                changes.append(
                    f"removed qemu:arg {flag.get('value')} {text} "
                    "(this QEMU has no rme-guest object)"
                )
        if len(block) == 0:
            root.remove(block)
            changes.append("removed the qemu:commandline block left empty")


def _drop_acpi_without_pflash(root: etree._Element, changes: list[str]) -> None:
    """libvirt (9.0 here, and stock releases since) accepts ACPI on aarch64 only with a pflash
    loader ("ACPI requires UEFI on this architecture"): a ROM loader or direct kernel boot is
    refused. The lane's ``test_stock_libvirt_refuses_acpi_without_pflash`` proves it."""
    loader = root.find("os/loader")
    if loader is not None and loader.get("type", "rom") == "pflash":
        return
    features = root.find("features")
    if features is None:
        return
    for acpi in features.findall("acpi"):
        features.remove(acpi)
        changes.append(
            "removed <features><acpi/> (this libvirt refuses ACPI on aarch64 "
            "without a pflash loader)"
        )


_X86_FEATURES = ("apic", "hyperv", "smm", "kvm", "pvspinlock")
_X86_TIMERS = ("kvmclock", "pit", "hpet", "hypervclock", "tsc")


def _drop_x86_only(root: etree._Element, changes: list[str]) -> None:
    features = root.find("features")
    if features is not None:
        for tag in _X86_FEATURES:
            for element in features.findall(tag):
                features.remove(element)
                changes.append(f"removed x86-only <features><{tag}> (fixture artefact)")
    clock = root.find("clock")
    if clock is not None:
        for timer in clock.findall("timer"):
            if timer.get("name") in _X86_TIMERS:
                clock.remove(timer)
                changes.append(f"removed x86-only timer {timer.get('name')} (fixture artefact)")
    for disk in root.iterfind("devices/disk[@device='cdrom']"):
        target = disk.find("target")
        if target is not None and target.get("bus") == "virtio":
            disk.set("device", "disk")
            target.attrib.pop("tray", "")
            changes.append(
                f"cdrom {target.get('dev')} on the virtio bus -> a disk (fixture "
                "artefact: libvirt has no ejectable media on virtio)"
            )


def _set_cpu_model(root: etree._Element, changes: list[str]) -> None:
    cpu = _child(root, "cpu")
    was = cpu.get("mode", "custom")
    # Topology and NUMA stay; host CPU feature names mean nothing to the TCG model.
    topology = [copy.deepcopy(c) for c in cpu if c.tag in ("topology", "numa")]
    for child in list(cpu):
        cpu.remove(child)
    cpu.attrib.clear()
    cpu.set("mode", "custom")
    cpu.set("match", "exact")
    model = etree.SubElement(cpu, "model", fallback="forbid")
    model.text = TCG_CPU_MODEL
    cpu.extend(topology)
    changes.append(
        f"<cpu mode='{was}'> -> custom model {TCG_CPU_MODEL} (TCG cannot pass a host CPU through)"
    )


def _set_uuid(root: etree._Element, value: str) -> None:
    element = root.find("uuid")
    if element is None:
        element = etree.Element("uuid")
        _child(root, "name").addnext(element)
    element.text = value
    # libvirt demands that the SMBIOS system UUID, when given, is the domain's.
    for entry in root.iterfind("sysinfo/system/entry[@name='uuid']"):
        entry.text = value


def _raise_memory(root: etree._Element, changes: list[str]) -> None:
    for tag in ("memory", "currentMemory"):
        element = root.find(tag)
        if element is None or element.text is None:
            continue
        size = int(element.text) * _UNITS[element.get("unit", "KiB")]
        if size < MEMORY_FLOOR_MIB * 2**20:
            element.set("unit", "MiB")
            element.text = str(MEMORY_FLOOR_MIB)
            changes.append(
                f"<{tag}> {size} bytes -> {MEMORY_FLOOR_MIB} MiB (too small for a Linux guest)"
            )


def _set_boot_files(root: etree._Element, files: BootFiles, changes: list[str]) -> None:
    os_element = _child(root, "os")
    had_kernel = os_element.find("kernel") is not None
    anchor = os_element.find("nvram")
    if anchor is None:
        anchor = os_element.find("loader")
    for tag, text in (
        ("kernel", str(files.kernel)),
        ("initrd", str(files.initrd)),
        ("cmdline", files.cmdline),
    ):
        element = os_element.find(tag)
        if element is None:
            element = etree.Element(tag)
            if anchor is not None:
                anchor.addnext(element)
            else:
                os_element.append(element)
        element.text = text
        anchor = element
    if had_kernel:
        how = "direct kernel boot, the VMI's files replaced"
    elif os_element.find("loader") is not None:
        how = "added; the firmware loads them through fw_cfg"
    else:
        how = "added; direct kernel boot"
    changes.append(f"<kernel>/<initrd>/<cmdline> -> the lane's guest ({how})")
    nvram = os_element.find("nvram")
    if nvram is not None:
        nvram.text = str(files.folder / "VARS.fd")
        changes.append("<nvram> -> a file in the run folder")


def _user_mode_nics(devices: etree._Element, changes: list[str]) -> None:
    for interface in devices.findall("interface"):
        was = interface.get("type")
        interface.set("type", "user")
        for tag in ("source", "target"):
            for element in interface.findall(tag):
                interface.remove(element)
        changes.append(f"<interface type='{was}'> -> type='user' (no pod network here)")
        for driver in interface.findall("driver"):
            if "queues" in driver.attrib:
                # libvirt: "multiqueue is not supported for network interfaces of type user";
                # iommu='on' and the rest of the driver stay.
                queues = str(driver.attrib.pop("queues"))
                changes.append(
                    f"interface driver queues={queues} dropped (a user-mode NIC has no multi-queue)"
                )


def _file_disks(devices: etree._Element, folder: Path, changes: list[str]) -> None:
    for index, disk in enumerate(devices.findall("disk")):
        image = folder / f"disk{index}.img"
        with image.open("wb") as handle:
            handle.truncate(DISK_SIZE)
        source = disk.find("source")
        was = None if source is None else source.get("file") or source.get("dev")
        if source is None:
            source = etree.SubElement(disk, "source")
        source.attrib.clear()
        source.set("file", str(image))
        disk.set("type", "file")
        for backing in disk.findall("backingStore"):
            disk.remove(backing)
        driver = disk.find("driver")
        if driver is not None and driver.get("type") not in (None, "raw"):
            driver.set("type", "raw")
        changes.append(f"disk {was} -> empty raw file {image.name}")


def _file_serial(devices: etree._Element, log: Path, changes: list[str]) -> None:
    for tag in ("serial", "console"):
        for element in devices.findall(tag):
            devices.remove(element)
    serial = etree.SubElement(devices, "serial", type="file")
    etree.SubElement(serial, "source", path=str(log))
    etree.SubElement(serial, "target", port="0")
    changes.append(f"serial console -> file {log.name}")


def _local_sockets(devices: etree._Element, folder: Path, changes: list[str]) -> None:
    for index, listen in enumerate(devices.iterfind("graphics/listen[@socket]")):
        listen.set("socket", str(folder / f"vnc{index}.sock"))
        changes.append(f"VNC socket -> vnc{index}.sock in the run folder")
