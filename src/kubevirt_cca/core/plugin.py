"""kubevirt-cca as a KubeVirt Plugin (VEP 190): the Plugin object and the pod injection.

On the Plugins path KubeVirt does not start our container: it only dials a socket named in the
cluster-scoped ``Plugin`` object. So kubevirt-cca

* ships a ``Plugin`` (:func:`plugin_object`) whose domain hook is a sidecar socket under
  ``/var/run/kubevirt-plugin/kubevirt-cca/``, conditioned on the enable label, failing closed;
* injects the container serving that socket into every labelled virt-launcher pod
  (:func:`pod_patch`), mounting KubeVirt's ``kubevirt-plugin-sockets`` volume with
  ``subPath: kubevirt-cca``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubevirt_cca.constants import ENABLED_LABEL, HOOK_COMMAND
from kubevirt_cca.core.admission.patches import PatchOperation, add
from kubevirt_cca.core.objects import labels_of
from kubevirt_cca.core.settings import Settings
from kubevirt_cca.errors import Violation

PLUGIN_NAME = "kubevirt-cca"
PLUGIN_SOCKET_ROOT = "/var/run/kubevirt-plugin"
PLUGIN_SOCKET_DIR = f"{PLUGIN_SOCKET_ROOT}/{PLUGIN_NAME}"
PLUGIN_SOCKET = f"{PLUGIN_SOCKET_DIR}/{PLUGIN_NAME}.sock"
PLUGIN_SOCKETS_VOLUME = "kubevirt-plugin-sockets"
PLUGIN_CONTAINER = "kubevirt-cca-plugin"
LAUNCHER_LABEL = "kubevirt.io"
LAUNCHER_LABEL_VALUE = "virt-launcher"
# virt-launcher's compute container runs as qemu (uid 107) in non-root mode: our socket must be
# usable by it, so the plugin container runs as that user too.
QEMU_UID = 107
# KubeVirt's domain-hook CEL sees the VMI with Go field names. Any value of the label calls the
# hook: a value other than "true" is then refused by the hook (fail closed), never skipped.
PLUGIN_CONDITION = f'"{ENABLED_LABEL}" in vmi.Labels'


def plugin_object() -> dict[str, Any]:
    """The cluster-scoped Plugin object the install ships."""
    return {
        "apiVersion": "plugin.kubevirt.io/v1alpha1",
        "kind": "Plugin",
        "metadata": {"name": PLUGIN_NAME, "labels": {"app.kubernetes.io/name": "kubevirt-cca"}},
        "spec": {
            "condition": PLUGIN_CONDITION,
            "failureStrategy": "Fail",
            "domainHooks": [
                {
                    "sidecar": {"socketPath": PLUGIN_SOCKET},
                    "condition": PLUGIN_CONDITION,
                    "failureStrategy": "Fail",
                }
            ],
        },
    }


def plugin_container(settings: Settings, image: str) -> dict[str, Any]:
    """The container that serves our domain hook inside the virt-launcher pod."""
    chosen = settings.to_json()
    return {
        "name": PLUGIN_CONTAINER,
        "image": image,
        "args": [
            HOOK_COMMAND,
            "--plugin-socket", PLUGIN_SOCKET,
            "--dialect", chosen["dialect"],
            "--firmware", chosen["firmware"],
            "--virtio-iommu", chosen["virtioIOMMU"],
        ],
        "volumeMounts": [
            {"name": PLUGIN_SOCKETS_VOLUME, "mountPath": PLUGIN_SOCKET_DIR,
             "subPath": PLUGIN_NAME},
        ],
        "resources": {
            "requests": {"cpu": "10m", "memory": "40Mi"},
            "limits": {"cpu": "200m", "memory": "80Mi"},
        },
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": QEMU_UID,
            "runAsGroup": QEMU_UID,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }


def is_cca_launcher_pod(pod: Mapping[str, Any]) -> bool:
    """A virt-launcher pod of a VMI that carries the enable label (any value)."""
    pod_labels = labels_of(pod)
    return pod_labels.get(LAUNCHER_LABEL) == LAUNCHER_LABEL_VALUE and ENABLED_LABEL in pod_labels


def pod_patch(pod: Mapping[str, Any], settings: Settings,
              image: str) -> tuple[list[PatchOperation], list[Violation]]:
    """JSON patch adding our plugin container to a labelled virt-launcher pod.

    Nothing for other pods, nothing when the container is already there (reinvocation). A
    labelled pod without KubeVirt's plugin socket volume is refused: without it our socket
    cannot reach virt-launcher and the VM would fail or, worse, start without the hook.
    """
    if not is_cca_launcher_pod(pod):
        return [], []
    spec = pod.get("spec")
    if not isinstance(spec, Mapping):
        return [], [Violation("spec", "expected a pod spec")]
    containers = spec.get("containers")
    if not isinstance(containers, list):
        return [], [Violation("spec.containers", "expected a list of containers")]
    if any(isinstance(c, Mapping) and c.get("name") == PLUGIN_CONTAINER for c in containers):
        return [], []
    volumes = spec.get("volumes")
    names = {v.get("name") for v in volumes if isinstance(v, Mapping)} if isinstance(
        volumes, list) else set()
    if PLUGIN_SOCKETS_VOLUME not in names:
        return [], [Violation(
            "spec.volumes",
            f"the virt-launcher pod has no {PLUGIN_SOCKETS_VOLUME} volume, so the kubevirt-cca "
            "plugin cannot serve its socket: KubeVirt's Plugins gate is off or this KubeVirt "
            "predates Plugins; use integrationMode sidecar",
        )]
    return [add(("spec", "containers", "-"), plugin_container(settings, image))], []
