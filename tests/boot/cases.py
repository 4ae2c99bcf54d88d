"""The domains the boot lane boots: the project's own arm64 domains and KubeVirt's fixture.

* ``uefi``: ``examples/vmi-cca.yaml`` (the label alone) through the built-in base domain; it
  has a pflash loader + NVRAM, which the rewrite turns into the firmware as ROM, no NVRAM.
* ``kernel``: ``examples/vm-cca-params.yaml`` (all three parameters) with a container kernel
  boot added, and the firmware taken out, so the domain boots the kernel directly (rule 4).
* ``fixture``: ``../shared/fixtures/kubevirt/domains/kubevirt-arm64.xml``, the domain KubeVirt's
  converter tests expect for an arm64 VMI (pflash loader + NVRAM), with the parameters of
  ``vm-cca-params.yaml``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import yaml
from lxml import etree

from kubevirt_cca.core.cluster.settings import Dialect, Settings
from kubevirt_cca.core.domain.basedomain import base_domain
from kubevirt_cca.core.domain.rewrite import rewrite_domain
from kubevirt_cca.core.vmi.request import CCARequest, find_template, parse_template
from tests.conftest import ROOT, SHARED

# No CCA firmware exists here; the stock AAVMF build stands in for it, loaded as ROM.
FIRMWARE = "/usr/share/AAVMF/AAVMF_CODE.fd"
FIXTURE = SHARED / "fixtures" / "kubevirt" / "domains" / "kubevirt-arm64.xml"
DIALECTS = tuple(Dialect)
KERNEL_ARGS = "console=ttyAMA0"


@dataclass(frozen=True)
class Case:
    """One domain before the rewrite, and the CCA request its VMI makes."""

    style: str  # "uefi" (firmware as ROM) or "kernel" (direct kernel boot)
    domain_xml: str
    request: CCARequest

    def rewritten(self, dialect: Dialect) -> str:
        return rewrite_domain(
            self.domain_xml, self.request, Settings(dialect=dialect, firmware=FIRMWARE)
        )


def _load(name: str) -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "examples" / name).read_text())
    assert isinstance(loaded, dict)
    return loaded


def _case(manifest: dict[str, Any], style: str) -> Case:
    template = find_template(manifest)
    request = parse_template(template)
    assert request is not None, "the example must ask for a Realm"
    metadata = manifest["metadata"]
    domain = base_domain(
        template, name=metadata["name"], namespace=metadata.get("namespace", "default")
    )
    return Case(style=style, domain_xml=domain, request=request)


def uefi_case() -> Case:
    return _case(_load("vmi-cca.yaml"), "uefi")


def _without_firmware(domain_xml: str) -> str:
    """Direct kernel boot without a loader (rule 4 of docs/rewrite.md).

    KubeVirt's arm64 domain keeps its UEFI firmware next to ``firmware.kernelBoot`` (and so does
    the built-in domain of ``render``); a domain from elsewhere may have none, and this case
    boots that shape: the kernel straight from the VMM, no firmware, a device tree.
    """
    root = etree.fromstring(domain_xml.encode())
    os_element = root.find("os")
    assert os_element is not None
    for tag in ("loader", "nvram"):
        for element in os_element.findall(tag):
            os_element.remove(element)
    features = root.find("features")
    if features is not None:
        for acpi in features.findall("acpi"):
            features.remove(acpi)
    return etree.tostring(root, encoding="unicode")


def kernel_case() -> Case:
    manifest = copy.deepcopy(_load("vm-cca-params.yaml"))
    domain_spec = manifest["spec"]["template"]["spec"]["domain"]
    domain_spec["firmware"] = {
        "kernelBoot": {
            "container": {
                "image": "registry.example/realm-kernel:6.1",
                "kernelPath": "/boot/vmlinuz",
                "initrdPath": "/boot/initrd.img",
            },
            "kernelArgs": KERNEL_ARGS,
        }
    }
    case = _case(manifest, "kernel")
    return Case(style="kernel", domain_xml=_without_firmware(case.domain_xml), request=case.request)


def fixture_case() -> Case:
    """KubeVirt's arm64 domain with the parameters of vm-cca-params.yaml (needs ../shared)."""
    request = kernel_case().request
    return Case(style="uefi", domain_xml=FIXTURE.read_text(), request=request)


def own_cases() -> dict[str, Case]:
    return {"uefi": uefi_case(), "kernel": kernel_case()}
