"""VMIs and domains the hook tests send, built the way virt-launcher would send them."""

from __future__ import annotations

import base64
import copy
import functools
import json
from typing import Any

import yaml

from kubevirt_cca.constants import ENABLED_LABEL, LAUNCH_SECURITY_ANNOTATION
from tests.conftest import shared_path

RPV = base64.b64encode(bytes(range(64))).decode()
# The parameters of the core's golden outputs (tests/data/golden/shared-kubevirt-arm64.*.xml).
FULL_PARAMETERS = {"measurementAlgo": "sha256", "measurementLog": True, "personalizationValue": RPV}


# A small arm64 domain shaped like virt-launcher's (pflash + NVRAM, a virtio disk and NIC), for
# tests that must not depend on ../shared.
ARM64_MINIMAL = (
    b"<domain type='kvm'><name>ns_v</name><memory>1048576</memory>"
    b"<os><type arch='aarch64' machine='virt'>hvm</type>"
    b"<loader readonly='yes' type='pflash'>/usr/share/AAVMF/AAVMF_CODE.fd</loader>"
    b"<nvram>/var/lib/libvirt/qemu/nvram/v_VARS.fd</nvram></os>"
    b"<devices><disk type='file' device='disk'><source file='/d.img'/>"
    b"<target dev='vda' bus='virtio'/></disk>"
    b"<interface type='ethernet'><model type='virtio'/></interface></devices></domain>"
)


def domain(name: str) -> bytes:
    """A domain XML from ../shared/fixtures/kubevirt/domains (skips the test when absent)."""
    return shared_path("fixtures", "kubevirt", "domains", name).read_bytes()


@functools.cache
def _vmi_arm() -> dict[str, Any]:
    manifest = shared_path("fixtures", "kubevirt", "manifests", "vmi-arm.yaml").read_text()
    loaded: dict[str, Any] = yaml.safe_load(manifest)
    return loaded


def plain_vmi(
    *, namespace: str = "tenant-a", name: str = "vmi-arm", with_kind: bool = False
) -> dict[str, Any]:
    """KubeVirt's arm64 example VMI as virt-launcher marshals it (no type meta by default)."""
    vmi = copy.deepcopy(_vmi_arm())
    if not with_kind:
        vmi.pop("kind", None)
        vmi.pop("apiVersion", None)
    vmi["metadata"].update(namespace=namespace, name=name, uid="6a1a4f0e-1d52-4b7c-a0de-1f0c5d")
    vmi["status"] = {"phase": "Scheduled", "nodeName": "arm-node-1"}
    return vmi


# What admission puts in spec.nodeSelector for a VMI scheduled on a node whose libvirt and QEMU
# honour every parameter (written out, not computed by the code under test).
HONOURS_EVERYTHING = {
    "kubevirt.io/cca": "true",
    **{
        f"cca.kubevirt.io/{layer}measurement-algo-{a}": "true"
        for layer in ("", "rme-guest-")
        for a in ("sha256", "sha384", "sha512")
    },
    **{
        f"cca.kubevirt.io/{layer}{p}": "true"
        for layer in ("", "rme-guest-")
        for p in ("personalization-value", "measurement-log")
    },
}


def cca_vmi(
    parameters: dict[str, Any] | str | None = None,
    *,
    node_selector: dict[str, str] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """The example VMI asking for a Realm, as admitted; ``parameters`` go into the annotation.

    ``node_selector`` is what admission scheduled it with (default: a node honouring every
    parameter in every dialect).
    """
    vmi = plain_vmi(**kwargs)
    vmi["spec"]["nodeSelector"] = dict(
        HONOURS_EVERYTHING if node_selector is None else node_selector
    )
    vmi["metadata"].setdefault("labels", {})[ENABLED_LABEL] = "true"
    if parameters is not None:
        text = parameters if isinstance(parameters, str) else json.dumps(parameters)
        vmi["metadata"].setdefault("annotations", {})[LAUNCH_SECURITY_ANNOTATION] = text
    return vmi


def as_json(vmi: dict[str, Any]) -> bytes:
    return json.dumps(vmi).encode()
