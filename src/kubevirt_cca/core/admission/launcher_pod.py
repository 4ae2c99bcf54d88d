"""The pod webhook of the Plugins path: our plugin container in labelled virt-launcher pods.

KubeVirt does not start a Plugin's sidecar: in plugin mode kubevirt-cca injects it into the
virt-launcher pod of every labelled VMI (:func:`kubevirt_cca.core.plugin.pod_patch`). Here is
when: never in sidecar mode (the pod is left exactly as KubeVirt made it), always in plugin
mode, and a refusal whenever the mode cannot be told or cannot work, because a labelled pod
without our container would run the VM as a plain VM (KubeVirt's Plugin object fails the
domain hook closed, and the CEL backstop refuses the pod, but neither should be reached).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubevirt_cca.constants import ENABLED_LABEL
from kubevirt_cca.core.admission.gates import ClusterView
from kubevirt_cca.core.admission.modes import mode_problems, plugin_mode
from kubevirt_cca.core.admission.patches import PatchOperation
from kubevirt_cca.core.plugin import is_cca_launcher_pod, pod_patch
from kubevirt_cca.errors import Violation

LABEL_FIELD = f"metadata.labels[{ENABLED_LABEL}]"


def plan_launcher_pod(pod: Mapping[str, Any], cluster: ClusterView
                      ) -> tuple[list[PatchOperation], list[Violation]]:
    """The patch for a pod being created, or why it is refused (both empty: leave it)."""
    if not is_cca_launcher_pod(pod):
        return [], []
    if cluster.gates is None:
        problem = cluster.gates_problem or "the KubeVirt CR could not be read"
        return [], [Violation(LABEL_FIELD, (
            f"kubevirt-cca cannot tell whether this CCA VM's virt-launcher pod needs its plugin "
            f"container ({problem}); the pod is refused until it can (fail closed), and KubeVirt "
            "retries it"))]
    if not plugin_mode(cluster):
        return [], []
    if cluster.config_problem is not None:
        return [], [Violation(LABEL_FIELD, (
            f"the ConfigMap kubevirt-cca-config is invalid ({cluster.config_problem}); the "
            "virt-launcher pod of a CCA VM is refused until the cluster admin fixes it"))]
    problems = mode_problems(cluster)
    if problems:
        return [], [Violation(LABEL_FIELD, (
            f"{problem.message}; the virt-launcher pod of a CCA VM is refused rather than "
            "started as a plain VM")) for problem in problems]
    ops, violations = pod_patch(pod, cluster.settings, cluster.hook_image)
    return ops, violations
