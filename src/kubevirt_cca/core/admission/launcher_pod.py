"""The pod webhook of the Plugins path: our plugin container in labelled virt-launcher pods.

KubeVirt does not start a Plugin's sidecar: in plugin mode kubevirt-cca injects it into the
virt-launcher pod of every labelled VMI (:func:`pod_patch`, mounting KubeVirt's
``kubevirt-plugin-sockets`` volume with ``subPath: kubevirt-cca``; the Plugin object naming the
socket is an install object, ``core/install/plugin_manifest.py``). Here is when: never in sidecar
mode (the pod is left exactly as KubeVirt made it), always in plugin mode, and a refusal whenever
the mode cannot be told or cannot work, because a labelled pod
without our container would run the VM as a plain VM (KubeVirt's Plugin object fails the
domain hook closed, and the CEL backstop refuses the pod, but neither should be reached).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubevirt_cca.constants import (
    ENABLED_LABEL,
    HOOK_COMMAND,
    LAUNCHER_LABEL,
    LAUNCHER_LABEL_VALUE,
    PLUGIN_CONTAINER,
    PLUGIN_NAME,
    PLUGIN_SOCKET,
    PLUGIN_SOCKET_DIR,
    PLUGIN_SOCKETS_VOLUME,
)
from kubevirt_cca.core.admission.gates import ClusterView
from kubevirt_cca.core.admission.modes import mode_problems, plugin_mode
from kubevirt_cca.core.admission.patches import PatchOperation, add
from kubevirt_cca.core.cluster.settings import Settings
from kubevirt_cca.core.wire.objects import labels_of
from kubevirt_cca.errors import Violation

LABEL_FIELD = f"metadata.labels[{ENABLED_LABEL}]"
# virt-launcher's compute container runs as qemu (uid 107) in non-root mode: our socket must be
# usable by it, so the plugin container runs as that user too.
QEMU_UID = 107


def plan_launcher_pod(
    pod: Mapping[str, Any], cluster: ClusterView
) -> tuple[list[PatchOperation], list[Violation]]:
    """The patch for a pod being created, or why it is refused (both empty: leave it)."""
    if not is_cca_launcher_pod(pod):
        return [], []
    if cluster.gates is None:
        problem = cluster.gates_problem or "the KubeVirt CR could not be read"
        return [], [
            Violation(
                LABEL_FIELD,
                (
                    "kubevirt-cca cannot tell whether this CCA VM's virt-launcher pod needs its "
                    f"plugin container ({problem}); the pod is refused until it can (fail closed), "
                    "and KubeVirt retries it"
                ),
            )
        ]
    if not plugin_mode(cluster):
        return [], []
    if cluster.config_problem is not None:
        return [], [
            Violation(
                LABEL_FIELD,
                (
                    f"the ConfigMap kubevirt-cca-config is invalid ({cluster.config_problem}); "
                    "the virt-launcher pod of a CCA VM is refused until the cluster admin fixes it"
                ),
            )
        ]
    problems = mode_problems(cluster)
    if problems:
        return [], [
            Violation(
                LABEL_FIELD,
                (
                    f"{problem.message}; "
                    "the virt-launcher pod of a CCA VM is refused rather than started as a plain "
                    "VM"
                ),
            )
            for problem in problems
        ]
    ops, violations = pod_patch(pod, cluster.settings, cluster.hook_image)
    return ops, violations


def plugin_container(settings: Settings, image: str) -> dict[str, Any]:
    """The container that serves our domain hook inside the virt-launcher pod."""
    chosen = settings.to_json()
    return {
        "name": PLUGIN_CONTAINER,
        "image": image,
        "args": [
            HOOK_COMMAND,
            "--plugin-socket",
            PLUGIN_SOCKET,
            "--dialect",
            chosen["dialect"],
            "--firmware",
            chosen["firmware"],
            "--virtio-iommu",
            chosen["virtioIOMMU"],
        ],
        "volumeMounts": [
            {"name": PLUGIN_SOCKETS_VOLUME, "mountPath": PLUGIN_SOCKET_DIR, "subPath": PLUGIN_NAME},
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


def pod_patch(
    pod: Mapping[str, Any], settings: Settings, image: str
) -> tuple[list[PatchOperation], list[Violation]]:
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
    names = (
        {v.get("name") for v in volumes if isinstance(v, Mapping)}
        if isinstance(volumes, list)
        else set()
    )
    if PLUGIN_SOCKETS_VOLUME not in names:
        return [], [
            Violation(
                "spec.volumes",
                f"the virt-launcher pod has no {PLUGIN_SOCKETS_VOLUME} volume, "
                "so the kubevirt-cca plugin cannot serve its socket: "
                "KubeVirt's Plugins gate is off or this KubeVirt predates Plugins; "
                "use integrationMode sidecar",
            )
        ]
    return [add(("spec", "containers", "-"), plugin_container(settings, image))], []
