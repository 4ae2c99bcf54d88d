"""Foreign QEMU arguments a domain can carry, each written out with what it is (the oracle).

Shared by the rewrite's unit tests, the hook over its socket and the peers lane (KubeVirt's own
hook manager). Each refused case names the text the refusal must show; each harmless case is
kept. The classes and spellings follow QEMU's option parser, checked with a real binary in
``tests/boot/test_qemu_arguments.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

from lxml import etree

from kubevirt_cca.constants import QEMU_NAMESPACE

Q = "{%s}" % QEMU_NAMESPACE  # noqa: UP031

# name: (qemu:arg values, text the refusal names)
REFUSED_ARGUMENTS: dict[str, tuple[tuple[str, ...], str]] = {
    # confidential-guest-support and the machine: QEMU takes the last -machine value
    "machine-cgs": (("-machine", "confidential-guest-support=other0"), "-machine"),
    "M-cgs": (("-M", "virt,confidential-guest-support=other0"), "-M virt,"),
    "double-dash-machine": (("--machine", "accel=tcg"), "--machine accel=tcg"),
    "machine-type-and-cgs": (
        ("-machine", "type=virt,confidential-guest-support=rme0"),
        "-machine type=virt,",
    ),
    "machine-cgs-comma-escaped": (
        ("-machine", "confidential-guest-support=rme0,,x"),
        "confidential-guest-support=rme0,,x",
    ),
    "machine-ours-plus-accel": (
        ("-machine", "confidential-guest-support=rme0,accel=tcg"),
        "accel=tcg",
    ),
    "machine-accel-tcg": (("-machine", "accel=tcg"), "the accelerator"),
    # the accelerator
    "accel-tcg": (("-accel", "tcg"), "-accel tcg"),
    "double-dash-accel": (("--accel", "tcg"), "--accel tcg"),
    "enable-kvm": (("-enable-kvm",), "-enable-kvm"),
    # the CPU
    "cpu-max": (("-cpu", "max"), "the last -cpu"),
    # firmware, and what is loaded into guest memory
    "bios": (("-bios", "/tmp/plain.fd"), "-bios /tmp/plain.fd"),
    "pflash": (("-pflash", "/tmp/plain.fd"), "the firmware"),
    "drive-pflash": (("-drive", "if=pflash,format=raw,file=/tmp/plain.fd"), "if=pflash"),
    "firmware-dir": (("-L", "/tmp/firmware"), "-L /tmp/firmware"),
    "kernel": (("-kernel", "/tmp/Image"), "-kernel"),
    "loader-device": (("-device", "loader,file=/tmp/blob,addr=0x40000000"), "loader,"),
    # virtio iommu and other device properties
    "global-iommu-off": (
        ("-global", "virtio-blk-pci.iommu_platform=off"),
        "virtio iommu_platform",
    ),
    "global-long-form": (
        ("-global", "driver=virtio-net-pci,property=iommu_platform,value=off"),
        "-global driver=virtio-net-pci",
    ),
    "global-disable-legacy": (("-global", "virtio-pci.disable-legacy=off"), "disable-legacy"),
    "set-device-property": (("-set", "device.ua-disk0.iommu_platform=off"), "-set"),
    "device-without-iommu": (("-device", "virtio-rng-pci,id=rng1"), "-device virtio-rng-pci"),
    # objects
    "someone-elses-rme-guest": (("-object", "rme-guest,id=rme1"), "rme-guest,id=rme1"),
    "another-object": (("-object", "secret,id=s0,data=x"), "-object secret"),
    # everything at once, from a file
    "readconfig": (("-readconfig", "/tmp/qemu.cfg"), "-readconfig"),
    # not an option at all: QEMU reads a bare word as a disk image
    "positional": (("plain.img",), "disk image"),
    # an option swallows the next argument as its value, whatever it looks like
    "fw-cfg-swallows-machine": (("-fw_cfg", "-machine", "accel=tcg"), "accel=tcg"),
    "fw-cfg-at-the-end": (("-fw_cfg",), "has no value"),
    "fw-cfg-not-opt": (("-fw_cfg", "name=etc/table-loader,string=x"), "etc/table-loader"),
    "fw-cfg-two-sources": (("-fw_cfg", "name=opt/a,file=/x,string=y"), "opt/a"),
    "fw-cfg-other-key": (("-fw_cfg", "name=opt/a,string=y,gen_id=1"), "gen_id"),
    "msg-other-value": (("-msg", "timestamp=maybe"), "timestamp=maybe"),
    "unknown-option": (("-smp", "4"), "not on kubevirt-cca's list"),
}

# name: (qemu:arg values kept as they are)
HARMLESS_ARGUMENTS: dict[str, tuple[str, ...]] = {
    # what KubeVirt's converter writes for an Ignition annotation
    "kubevirt-ignition": (
        "-fw_cfg",
        "name=opt/com.coreos/config,file=/var/run/kubevirt-ephemeral-disks/ignition-data/x.ign",
    ),
    "fw-cfg-implied-name": ("--fw_cfg", "opt/org.example/x,string=a,,b"),
    "msg": ("-msg", "timestamp=on,guest-name=off"),
}

# name: (the element, inside <domain>, the text the refusal names)
REFUSED_ELEMENTS: dict[str, tuple[str, str]] = {
    "env": (
        f'<qemu:commandline xmlns:qemu="{QEMU_NAMESPACE}">'
        '<qemu:env name="LD_PRELOAD" value="/tmp/x.so"/></qemu:commandline>',
        "<qemu:env> sets QEMU's environment",
    ),
    "override": (
        f'<qemu:override xmlns:qemu="{QEMU_NAMESPACE}"><qemu:device alias="ua-disk0">'
        '<qemu:frontend><qemu:property name="iommu_platform" type="bool" value="false"/>'
        "</qemu:frontend></qemu:device></qemu:override>",
        "<qemu:override> overrides device properties",
    ),
    "capabilities": (
        f'<qemu:capabilities xmlns:qemu="{QEMU_NAMESPACE}">'
        '<qemu:del capability="machine.virt.confidential-guest-support"/></qemu:capabilities>',
        "<qemu:capabilities> changes the QEMU capabilities",
    ),
    "deprecation": (
        f'<qemu:deprecation xmlns:qemu="{QEMU_NAMESPACE}" behavior="crash"/>',
        "<qemu:deprecation>",
    ),
    "arg-without-value": (
        f'<qemu:commandline xmlns:qemu="{QEMU_NAMESPACE}"><qemu:arg/></qemu:commandline>',
        "has no value attribute",
    ),
    "other-prefix": (
        f'<q:commandline xmlns:q="{QEMU_NAMESPACE}"><q:arg value="-cpu"/>'
        '<q:arg value="max"/></q:commandline>',
        "-cpu max",
    ),
}


def commandline_xml(values: Sequence[str]) -> str:
    """One ``<qemu:commandline>`` passing ``values``, as XML text."""
    block = etree.Element(f"{Q}commandline", nsmap={"qemu": QEMU_NAMESPACE})
    for value in values:
        etree.SubElement(block, f"{Q}arg", value=value)
    return etree.tostring(block, encoding="unicode")


def with_commandlines(domain_xml: str | bytes, *blocks: Sequence[str]) -> str:
    """``domain_xml`` with one more ``<qemu:commandline>`` per block, at the end of the domain."""
    for values in blocks:
        domain_xml = with_element(domain_xml, commandline_xml(values))
    return domain_xml if isinstance(domain_xml, str) else domain_xml.decode()


def with_element(domain_xml: str | bytes, element: str) -> str:
    """``domain_xml`` with ``element`` (XML text) appended to ``<domain>``."""
    root = etree.fromstring(domain_xml.encode() if isinstance(domain_xml, str) else domain_xml)
    root.append(etree.fromstring(element))
    return etree.tostring(root, encoding="unicode")


def commandline_values(domain_xml: str | bytes) -> list[list[str]]:
    """The ``qemu:arg`` values of each ``<qemu:commandline>`` of a domain, block by block."""
    root = etree.fromstring(domain_xml.encode() if isinstance(domain_xml, str) else domain_xml)
    return [
        [arg.get("value", "") for arg in block.iterfind(f"{Q}arg")]
        for block in root.iterfind(f"{Q}commandline")
    ]
