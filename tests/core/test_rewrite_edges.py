"""Rewrite cases that only the peers lane used to catch (issue 24, item 8): each test here fails
on a mutant of core/domain/rewrite.py that the rest of the fast suite let live."""

from __future__ import annotations

import pytest
from lxml import etree

from kubevirt_cca.core.cluster.settings import Dialect, Settings
from kubevirt_cca.core.domain.rewrite import rewrite_domain, rme_guest_properties
from kubevirt_cca.core.vmi.request import CCARequest
from kubevirt_cca.errors import DomainError
from tests.core.rewrite_support import own_domains

OWN = own_domains()
CONTROLLER = '<controller type="virtio-serial" index="0" model="virtio-non-transitional"/>'


def realm(xml: str, dialect: Dialect = Dialect.VEP) -> etree._Element:
    return etree.fromstring(rewrite_domain(xml, CCARequest(), Settings(dialect=dialect)))


def test_a_virtio_console_alone_gets_a_named_virtio_serial_controller() -> None:
    """A virtio ``<console>`` needs a virtio-serial controller as a channel does; libvirt adds one
    without iommu when the domain names none."""
    source = etree.fromstring(OWN["uefi-many-devices"].replace(CONTROLLER, "").encode())
    devices = source.find("devices")
    assert devices is not None
    for channel in devices.findall("channel"):
        devices.remove(channel)
    console = etree.SubElement(devices, "console", type="pty")
    etree.SubElement(console, "target", type="virtio", port="0")
    assert devices.find("controller[@type='virtio-serial']") is None
    assert devices.find("channel") is None

    out = realm(etree.tostring(source, encoding="unicode"))
    controllers = out.findall("devices/controller[@type='virtio-serial']")
    assert len(controllers) == 1
    assert [d.get("iommu") for d in controllers[0].findall("driver")] == ["on"]


def test_a_serial_console_needs_no_virtio_serial_controller() -> None:
    source = etree.fromstring(OWN["uefi-many-devices"].replace(CONTROLLER, "").encode())
    devices = source.find("devices")
    assert devices is not None
    for channel in devices.findall("channel"):
        devices.remove(channel)
    console = etree.SubElement(devices, "console", type="pty")
    etree.SubElement(console, "target", type="serial", port="0")
    out = realm(etree.tostring(source, encoding="unicode"))
    assert out.find("devices/controller[@type='virtio-serial']") is None


@pytest.mark.parametrize(
    "value",
    [
        "A" * 86 + "==,measurement-log=on",  # a comma would start a new rme-guest property
        "A" * 42 + "+/A=" + " x",  # a space ends the word
        "not base64 at all",
        "A" * 86 + "==\n",
    ],
)
def test_the_personalization_value_is_checked_again_before_the_command_line(value: str) -> None:
    """The parser lets only canonical base64 through; a request built past it is refused too,
    so no comma or other QEMU option syntax reaches ``-object rme-guest``."""
    with pytest.raises(DomainError, match="personalization value is not canonical base64"):
        rme_guest_properties(CCARequest(personalization_value=value))
    with pytest.raises(DomainError):
        rewrite_domain(
            OWN["kernel-boot-bare"],
            CCARequest(personalization_value=value),
            Settings(dialect=Dialect.QEMU_COMMANDLINE),
        )


def test_a_canonical_personalization_value_passes_the_second_check() -> None:
    value = "A" * 86 + "=="
    assert ("personalization-value", value) in rme_guest_properties(
        CCARequest(personalization_value=value)
    )


def test_kernel_boot_with_a_loader_gets_the_rom_and_loses_pflash_and_nvram() -> None:
    """KubeVirt keeps the UEFI loader and NVRAM next to ``firmware.kernelBoot`` on arm64: the
    loader becomes the CCA firmware as ROM (it starts the kernel) and the NVRAM goes."""
    source = OWN["kernel-boot-bare"].replace(
        "<kernel>",
        '<loader readonly="yes" secure="no" type="pflash">/usr/share/AAVMF/AAVMF_CODE.fd</loader>'
        "<nvram>/var/run/kubevirt-private/libvirt/qemu/nvram/vmi_VARS.fd</nvram><kernel>",
    )
    assert "pflash" in source
    for dialect in Dialect:
        out = realm(source, dialect)
        loaders = out.findall("os/loader")
        assert len(loaders) == 1
        assert loaders[0].get("type") == "rom"
        assert loaders[0].get("readonly") == "yes"
        assert out.find("os/nvram") is None
        assert out.findtext("os/kernel") == "/var/run/kubevirt-ephemeral-disks/kernel-boot/kernel"


def test_bare_kernel_boot_gets_no_loader() -> None:
    for dialect in Dialect:
        out = realm(OWN["kernel-boot-bare"], dialect)
        assert out.find("os/loader") is None
        assert out.find("os/nvram") is None
