"""What ``kubevirt-cca uninstall`` removes, in which order, and when it refuses (pure).

The order (docs/admin.md, "Uninstalling"):

1. ``admission``: the webhook configurations, the Plugin, the CCA admission policies and their
   bindings. First, so nothing refuses or calls a webhook that is going away while the rest goes.
2. ``workloads``: the labeller DaemonSet, the webhook Deployment and its PDB, the certificate
   Job and CronJob.
3. ``rbac``: bindings, roles, service accounts. The labeller can no longer patch nodes after this,
   so a labeller pod still terminating cannot put back the labels step 6 removes.
4. ``labeller restriction``: the policies that confined the labeller (it has no rights left).
5. ``configuration``: the Service, ConfigMaps, Secrets, cert-manager objects, monitoring objects.
6. ``node labels``: our label keys (:func:`~kubevirt_cca.core.node.labels.is_owned_label`) and
   the detection annotation on every node; never another key, and nothing on a node the admin
   took away from labellers (KubeVirt's skip-node annotation: those labels are theirs).
7. ``namespace``: the install namespace, last.

Before anything, VMIs and VMs that ask for CCA are looked for: with the admission objects gone,
such a VM would start as a plain VM. Their presence refuses the uninstall unless forced.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from kubevirt_cca.constants import (
    ENABLED_LABEL,
    KUBEVIRT_SKIP_NODE_ANNOTATION,
    NODE_DETECTION_ANNOTATION,
)
from kubevirt_cca.core.install import install_objects
from kubevirt_cca.core.install.names import (
    CA_SECRET,
    CERTIFICATE_MODES,
    TLS_SECRET,
    InstallOptions,
    Manifest,
)
from kubevirt_cca.core.install.plugin_manifest import plugin_object
from kubevirt_cca.core.node.labels import is_owned_label

ADMISSION: Final = "admission"
WORKLOADS: Final = "workloads"
RBAC: Final = "rbac"
LABELLER_RESTRICTION: Final = "labeller restriction"
CONFIGURATION: Final = "configuration"
NODE_LABELS: Final = "node labels"
NAMESPACE: Final = "namespace"
STEPS: Final = (
    ADMISSION,
    WORKLOADS,
    RBAC,
    LABELLER_RESTRICTION,
    CONFIGURATION,
    NODE_LABELS,
    NAMESPACE,
)

_POLICY_KINDS = ("ValidatingAdmissionPolicyBinding", "ValidatingAdmissionPolicy")
# Within a step, in this order (a kind not listed goes last, in the order it came).
_KIND_ORDER: Final = {
    ADMISSION: (
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
        "Plugin",
        *_POLICY_KINDS,
    ),
    WORKLOADS: ("DaemonSet", "Deployment", "PodDisruptionBudget", "CronJob", "Job"),
    RBAC: ("ClusterRoleBinding", "RoleBinding", "ClusterRole", "Role", "ServiceAccount"),
    LABELLER_RESTRICTION: _POLICY_KINDS,
}


@dataclass(frozen=True)
class ObjectRef:
    """One object to delete: what identifies it in a cluster."""

    api_version: str
    kind: str
    name: str
    namespace: str | None = None

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> ObjectRef:
        metadata = obj.get("metadata") or {}
        return cls(
            api_version=str(obj["apiVersion"]),
            kind=str(obj["kind"]),
            name=str(metadata["name"]),
            namespace=metadata.get("namespace"),
        )

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind} {where}{self.name}"


@dataclass(frozen=True)
class Step:
    name: str
    objects: tuple[ObjectRef, ...]


def secrets(options: InstallOptions) -> list[Manifest]:
    """The Secrets the install does not create itself (cert-manager or ``certs ensure`` does)."""
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": options.namespace},
        }
        for name in (TLS_SECRET, CA_SECRET)
    ]


def uninstall_objects(
    options: InstallOptions, policies: Mapping[str, Sequence[Manifest]] | None = None
) -> list[Manifest]:
    """Everything any variant of the install may have created: both certificate modes, the
    monitoring objects, the Plugin (deploy/plugin/) and the certificate Secrets."""
    objects: list[Manifest] = []
    for mode in CERTIFICATE_MODES:
        variant = replace(options, certificates=mode, monitoring=True)
        objects.extend(install_objects(variant, policies))
    return [*objects, plugin_object(), *secrets(options)]


def _step_of(obj: ObjectRef, component: str | None) -> str:
    if obj.kind == "Namespace":
        return NAMESPACE
    if obj.kind in _POLICY_KINDS:
        return LABELLER_RESTRICTION if component == "labeller" else ADMISSION
    for step in (ADMISSION, WORKLOADS, RBAC):
        if obj.kind in _KIND_ORDER[step]:
            return step
    return CONFIGURATION


def uninstall_steps(objects: Iterable[Mapping[str, Any]]) -> list[Step]:
    """The install's objects (every variant it may have been installed with) as ordered steps;
    ``node labels`` has no objects (the nodes are read at run time). Duplicates are dropped."""
    grouped: dict[str, list[ObjectRef]] = {step: [] for step in STEPS}
    for obj in objects:
        ref = ObjectRef.of(obj)
        labels = (obj.get("metadata") or {}).get("labels") or {}
        step = _step_of(ref, labels.get("app.kubernetes.io/component"))
        if ref not in grouped[step]:
            grouped[step].append(ref)
    steps = []
    for step in STEPS:
        order = _KIND_ORDER.get(step, ())
        refs = sorted(
            grouped[step],
            key=lambda r: order.index(r.kind) if r.kind in order else len(order),
        )
        steps.append(Step(step, tuple(refs)))
    return steps


@dataclass(frozen=True)
class NodeCleanup:
    """What to remove from one node: our label keys and the detection annotation."""

    node: str
    labels: tuple[str, ...]
    annotation: bool
    skipped: bool = False  # KubeVirt's skip-node annotation: its labels are the admin's

    @property
    def patch(self) -> dict[str, Any]:
        """A JSON merge patch: ``null`` removes a key, and no other key is named."""
        metadata: dict[str, Any] = {}
        if self.labels:
            metadata["labels"] = dict.fromkeys(self.labels)
        if self.annotation:
            metadata["annotations"] = {NODE_DETECTION_ANNOTATION: None}
        return {"metadata": metadata}

    @property
    def changes(self) -> bool:
        return not self.skipped and bool(self.labels or self.annotation)


def node_cleanup(node: Mapping[str, Any]) -> NodeCleanup:
    metadata = node.get("metadata") or {}
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    return NodeCleanup(
        node=str(metadata.get("name", "")),
        labels=tuple(sorted(key for key in labels if is_owned_label(key))),
        annotation=NODE_DETECTION_ANNOTATION in annotations,
        skipped=KUBEVIRT_SKIP_NODE_ANNOTATION in annotations,
    )


def _enabled(labels: Any) -> bool:
    return isinstance(labels, Mapping) and ENABLED_LABEL in labels


def asks_for_cca(obj: Mapping[str, Any]) -> bool:
    """Whether a VMI, or the VMI template of a VM, carries the enable label (any value: the
    webhook and the hook refuse a wrong value, and without them it would be ignored)."""
    if _enabled((obj.get("metadata") or {}).get("labels")):
        return True
    template = ((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}
    return _enabled(template.get("labels"))


def cca_users(objects: Sequence[Mapping[str, Any]]) -> list[str]:
    """``Kind namespace/name`` of each object that asks for CCA."""
    return [str(ObjectRef.of(obj)) for obj in objects if asks_for_cca(obj)]
