"""Kubernetes access, shared by every component that talks to the API server.

kubevirt-cca uses lightkube (see docs/dependencies.md): an asyncio client with typed core
models and generic resources for KubeVirt's kinds. This module builds the client the same way
for every command and declares the KubeVirt resources once.
"""

from __future__ import annotations

from lightkube import AsyncClient
from lightkube.config.kubeconfig import KubeConfig
from lightkube.config.models import Cluster, User
from lightkube.core.exceptions import ConfigError
from lightkube.generic_resource import create_global_resource, create_namespaced_resource

from kubevirt_cca.errors import KubernetesAPIError

FIELD_MANAGER = "kubevirt-cca"

# KubeVirt's kinds, as lightkube generic resources.
KubeVirt = create_namespaced_resource("kubevirt.io", "v1", "KubeVirt", "kubevirts")
VirtualMachineInstance = create_namespaced_resource(
    "kubevirt.io", "v1", "VirtualMachineInstance", "virtualmachineinstances"
)
VirtualMachine = create_namespaced_resource(
    "kubevirt.io", "v1", "VirtualMachine", "virtualmachines"
)
Plugin = create_global_resource("plugin.kubevirt.io", "v1alpha1", "Plugin", "plugins")


def kube_config(*, server: str | None = None, kubeconfig: str | None = None) -> KubeConfig:
    """Where the API server is: an explicit URL, a kubeconfig file, or the environment.

    The environment means the pod's service account in a cluster, else ``$KUBECONFIG`` or
    ``~/.kube/config``.
    """
    if server is not None:
        # An explicit (anonymous) user: lightkube's from_server() leaves it out, and its HTTP
        # adapter then refuses to build a client ("Missing user").
        return KubeConfig.from_one(cluster=Cluster(server=server), user=User())
    try:
        if kubeconfig is not None:
            return KubeConfig.from_file(kubeconfig)
        return KubeConfig.from_env()
    except ConfigError as exc:
        raise KubernetesAPIError(
            f"no usable Kubernetes configuration ({exc}); give --kubeconfig FILE or --server "
            "URL, set $KUBECONFIG, or run in a pod with a service account") from exc


def async_client(*, server: str | None = None, kubeconfig: str | None = None,
                 namespace: str | None = None) -> AsyncClient:
    """An asyncio client; ``server`` (e.g. a test emulator's URL) wins over the environment."""
    return AsyncClient(
        config=kube_config(server=server, kubeconfig=kubeconfig),
        namespace=namespace,
        field_manager=FIELD_MANAGER,
        trust_env=False,
    )
