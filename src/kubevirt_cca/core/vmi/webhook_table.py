"""The webhook table: every admission endpoint kubevirt-cca serves, in one place.

Admission dispatch (core/admission/admit.py), the rendered webhook configurations
(core/install/webhook_manifests.py), ``doctor``, ``kubevirt-cca webhook --help`` and the
bad-request tests all read this table; none of them lists endpoints of its own
(docs/development.md, "One place per decision").
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final, Literal

from kubevirt_cca.core.vmi.placement import VMI_KIND

TEMPLATE_KINDS: Final = ("VirtualMachine", "VirtualMachineInstanceReplicaSet", "VirtualMachinePool")
MIGRATION_KIND: Final = "VirtualMachineInstanceMigration"
POD_KIND: Final = "Pod"
PLUGIN_KIND: Final = "Plugin"
KUBEVIRT_KIND: Final = "KubeVirt"
WEBHOOK_TIMEOUT_SECONDS: Final = 10
WEBHOOK_NAME_SUFFIX: Final = ".cca.kubevirt.io"

FailurePolicy = Literal["Fail", "Ignore"]
Selector = Literal["none", "cca-vmis", "cca-launcher-pods"]


class Endpoint(StrEnum):
    """The webhook's HTTPS paths (without the leading slash)."""

    MUTATE_VMI = "mutate-vmi"
    VALIDATE_VMI = "validate-vmi"
    VALIDATE_TEMPLATES = "validate-templates"
    VALIDATE_MIGRATION = "validate-migration"
    MUTATE_LAUNCHER_POD = "mutate-launcher-pod"
    VALIDATE_PLUGIN = "validate-plugin"
    VALIDATE_KUBEVIRT = "validate-kubevirt"


@dataclass(frozen=True, kw_only=True)
class Rule:
    """One entry of a webhook's ``rules``: which API requests the API server sends it."""

    group: str
    versions: tuple[str, ...]
    resources: tuple[str, ...]
    operations: tuple[str, ...]
    scope: Literal["Namespaced", "Cluster"] = "Namespaced"


@dataclass(frozen=True, kw_only=True)
class Webhook:
    """One endpoint: what it admits, how the API server calls it, and its line in ``--help``."""

    endpoint: Endpoint
    kinds: tuple[str, ...]
    rules: tuple[Rule, ...]
    failure_policy: FailurePolicy
    selector: Selector = "none"
    """``cca-vmis``: only objects carrying the enable label (these must fail closed);
    ``cca-launcher-pods``: those that are also virt-launcher pods; ``none``: every object."""
    summary: str
    timeout_seconds: int = WEBHOOK_TIMEOUT_SECONDS

    @property
    def name(self) -> str:
        return f"{self.endpoint.value}{WEBHOOK_NAME_SUFFIX}"

    @property
    def path(self) -> str:
        return f"/{self.endpoint.value}"

    @property
    def mutating(self) -> bool:
        return self.endpoint.value.startswith("mutate-")


_CREATE: Final = ("CREATE",)
_CREATE_UPDATE: Final = ("CREATE", "UPDATE")
_VMIS: Final = ("virtualmachineinstances",)

# docs/admin.md, "Failure policies", says why: only CCA VMIs (selected by label) fail closed.
WEBHOOKS: Final[tuple[Webhook, ...]] = (
    Webhook(
        endpoint=Endpoint.MUTATE_VMI,
        kinds=(VMI_KIND,),
        rules=(Rule(group="kubevirt.io", versions=("v1",), resources=_VMIS, operations=_CREATE),),
        failure_policy="Fail",
        selector="cca-vmis",
        summary="fill in what a CCA VMI needs (node selector, arm64, no balloon, eviction None, "
        "the hook sidecar, the resolved annotation)",
    ),
    Webhook(
        endpoint=Endpoint.VALIDATE_VMI,
        kinds=(VMI_KIND,),
        rules=(
            Rule(group="kubevirt.io", versions=("v1",), resources=_VMIS, operations=_CREATE_UPDATE),
        ),
        failure_policy="Fail",
        selector="cca-vmis",
        summary="refuse a VMI that would not run as a Realm, or a change to one",
    ),
    Webhook(
        endpoint=Endpoint.VALIDATE_TEMPLATES,
        kinds=TEMPLATE_KINDS,
        rules=(
            Rule(
                group="kubevirt.io",
                versions=("v1",),
                resources=("virtualmachines", "virtualmachineinstancereplicasets"),
                operations=_CREATE_UPDATE,
            ),
            Rule(
                group="pool.kubevirt.io",
                versions=("*",),
                resources=("virtualmachinepools",),
                operations=_CREATE_UPDATE,
            ),
        ),
        failure_policy="Ignore",
        summary="the same checks on VM, VMI replica set and VM pool templates",
    ),
    Webhook(
        endpoint=Endpoint.VALIDATE_MIGRATION,
        kinds=(MIGRATION_KIND,),
        rules=(
            Rule(
                group="kubevirt.io",
                versions=("v1",),
                resources=("virtualmachineinstancemigrations",),
                operations=_CREATE,
            ),
        ),
        failure_policy="Ignore",
        summary="refuse migrating a CCA VMI",
    ),
    # Plugins path (docs/plugins.md): injects the plugin container into labelled virt-launcher
    # pods (none in sidecar mode).
    Webhook(
        endpoint=Endpoint.MUTATE_LAUNCHER_POD,
        kinds=(POD_KIND,),
        rules=(Rule(group="", versions=("v1",), resources=("pods",), operations=_CREATE),),
        failure_policy="Fail",
        selector="cca-launcher-pods",
        summary="add the kubevirt-cca plugin container to a CCA VM's virt-launcher pod "
        "(integration mode plugin; nothing in sidecar mode, docs/plugins.md)",
    ),
    # The entrance to the mixed state (docs/plugins.md): KubeVirt's cluster-scoped Plugin
    # objects, created while kubevirt-cca runs as a hook sidecar. Installed on every KubeVirt:
    # a rule for a resource the API server does not serve matches nothing. Fail: Plugin
    # creation is rare, blocking it is safe (docs/admission.md).
    Webhook(
        endpoint=Endpoint.VALIDATE_PLUGIN,
        kinds=(PLUGIN_KIND,),
        rules=(
            Rule(
                group="plugin.kubevirt.io",
                versions=("v1alpha1",),
                resources=("plugins",),
                operations=_CREATE,
                scope="Cluster",
            ),
        ),
        failure_policy="Fail",
        summary="refuse a KubeVirt Plugin object created while kubevirt-cca runs as a hook sidecar "
        "(the mixed state, docs/plugins.md)",
    ),
    # ... and the other entrance: the KubeVirt CR updated to turn the Plugins gate on while
    # Plugin objects exist (Ignore: our outage must never block KubeVirt's upgrades).
    Webhook(
        endpoint=Endpoint.VALIDATE_KUBEVIRT,
        kinds=(KUBEVIRT_KIND,),
        rules=(
            Rule(
                group="kubevirt.io",
                versions=("v1",),
                resources=("kubevirts",),
                operations=("UPDATE",),
            ),
        ),
        failure_policy="Ignore",
        summary=(
            "refuse a KubeVirt CR update that turns the Plugins gate on while Plugin objects exist "
            "(the mixed state)"
        ),
    ),
)

BY_ENDPOINT: Final = {hook.endpoint: hook for hook in WEBHOOKS}
