"""What the webhook tests share: kmock's resources, the paths the objects are created under, a
VMI, waiting until the watches have caught up, and a fixed cluster view (:class:`StaticCluster`)
for the server without an API server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import kmock
from kmock import ResourceInfo

from kubevirt_cca.core.admission.gates import ClusterView
from kubevirt_cca.core.admission.validate import VMILookup

KUBEVIRTS = "/apis/kubevirt.io/v1/namespaces/kubevirt/kubevirts"
CONFIG_MAPS = "/api/v1/namespaces/kubevirt-cca/configmaps"
VMI: dict[str, Any] = {
    "apiVersion": "kubevirt.io/v1",
    "kind": "VirtualMachineInstance",
    "metadata": {"name": "realm", "namespace": "default"},
    "spec": {"domain": {"devices": {}, "resources": {}}},
}


def forbidden(message: str) -> dict[str, Any]:
    """The API server's 403 body (a Status) saying message."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "code": 403,
        "reason": "Forbidden",
        "message": message,
    }


def declare_resources(emulator: kmock.KubernetesEmulator) -> None:
    emulator.resources["kubevirt.io/v1/kubevirts"] = ResourceInfo(kind="KubeVirt", namespaced=True)
    emulator.resources["kubevirt.io/v1/virtualmachineinstances"] = ResourceInfo(
        kind="VirtualMachineInstance", namespaced=True
    )
    emulator.resources["v1/configmaps"] = ResourceInfo(kind="ConfigMap", namespaced=True)
    emulator.resources["plugin.kubevirt.io/v1alpha1/plugins"] = ResourceInfo(
        kind="Plugin", namespaced=False
    )
    emulator.resources["v1/nodes"] = ResourceInfo(kind="Node", namespaced=False)


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


@dataclass
class StaticCluster:
    """A fixed cluster view (the server's tests and benchmark); VMIs from a dict."""

    fixed: ClusterView
    vmis: dict[tuple[str, str], dict[str, object]] = field(default_factory=dict)
    ready: bool = True

    def view(self) -> ClusterView:
        return self.fixed

    async def lookup_vmi(self, namespace: str, name: str) -> VMILookup:
        return VMILookup(vmi=self.vmis.get((namespace, name)))
