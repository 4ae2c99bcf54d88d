"""One AdmissionReview request in, one response out, for each of the webhook's endpoints."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubevirt_cca.core.admission.gates import ClusterView
from kubevirt_cca.core.admission.launcher_pod import plan_launcher_pod
from kubevirt_cca.core.admission.modes import mode_warnings
from kubevirt_cca.core.admission.mutate import plan_vmi
from kubevirt_cca.core.admission.plugin_object import (
    judge_kubevirt_update,
    judge_plugin_create,
    plugin_warnings,
)
from kubevirt_cca.core.admission.reviews import (
    AdmissionRequest,
    AdmissionResponse,
    allow,
    deny,
    object_of,
    old_object_of,
)
from kubevirt_cca.core.admission.rules import capability_warnings
from kubevirt_cca.core.admission.validate import (
    MIGRATION_REFUSAL,
    VMILookup,
    judge_migration,
    validate_template,
    validate_vmi,
)
from kubevirt_cca.core.vmi.request import parse_request
from kubevirt_cca.core.vmi.webhook_table import BY_ENDPOINT, MIGRATION_KIND, Endpoint
from kubevirt_cca.core.wire.objects import meta_str
from kubevirt_cca.errors import RequestError, Violation


@dataclass(frozen=True)
class Verdict:
    """The response and what the log line and metrics say about it."""

    response: AdmissionResponse
    kind: str
    operation: str
    namespace: str
    name: str
    causes: tuple[Violation, ...] = ()
    patched: int = 0

    @property
    def verdict(self) -> str:
        return "allowed" if self.response["allowed"] else "denied"


def migration_target(request: AdmissionRequest) -> tuple[str, str] | None:
    """(namespace, VMI name) a migration CREATE needs looked up, else ``None``."""
    if request["kind"]["kind"] != MIGRATION_KIND or request["operation"] != "CREATE":
        return None
    spec = object_of(request).get("spec")
    name = spec.get("vmiName") if isinstance(spec, Mapping) else None
    namespace = request.get("namespace") or meta_str(object_of(request), "namespace")
    if not isinstance(name, str) or not name or not namespace:
        return None
    return namespace, name


def admit(
    endpoint: Endpoint,
    request: AdmissionRequest,
    cluster: ClusterView,
    *,
    lookup: VMILookup | None = None,
) -> Verdict:
    """Decide one request. Operations other than CREATE and UPDATE are allowed untouched."""
    uid, kind, operation = request["uid"], request["kind"]["kind"], request["operation"]
    obj = object_of(request)
    namespace = request.get("namespace") or meta_str(obj, "namespace")
    name = request.get("name") or meta_str(obj, "name") or meta_str(obj, "generateName")

    def verdict(
        response: AdmissionResponse, causes: tuple[Violation, ...] = (), patched: int = 0
    ) -> Verdict:
        return Verdict(response, kind, operation, namespace, name, causes, patched)

    kinds = BY_ENDPOINT[endpoint].kinds
    if kind not in kinds:
        expected = ", ".join(kinds)
        cause = Violation(
            "kind",
            f"/{endpoint.value} admits {expected}; got {kind!r}. "
            "The webhook configuration sends the wrong resources here",
        )
        return verdict(deny(uid, [cause], code=400), (cause,))
    if operation not in ("CREATE", "UPDATE"):
        return verdict(allow(uid))
    old = old_object_of(request)
    causes: list[Violation]
    if endpoint is Endpoint.MUTATE_VMI:
        if operation != "CREATE":
            return verdict(allow(uid))
        plan = plan_vmi(obj, cluster)
        if plan.violations:
            return verdict(deny(uid, plan.violations), plan.violations)
        warnings = (
            [*mode_warnings(cluster), *capability_warnings(plan.request, cluster)]
            if plan.request is not None
            else []
        )
        return verdict(allow(uid, patch=plan.patch, warnings=warnings), patched=len(plan.patch))
    if endpoint is Endpoint.MUTATE_LAUNCHER_POD:
        if operation != "CREATE":
            return verdict(allow(uid))
        ops, pod_causes = plan_launcher_pod(obj, cluster)
        if pod_causes:
            return verdict(deny(uid, pod_causes), tuple(pod_causes))
        return verdict(allow(uid, patch=ops), patched=len(ops))
    if endpoint is Endpoint.VALIDATE_KUBEVIRT:
        # The other entrance: the Plugins gate turned on while Plugin objects exist.
        causes = judge_kubevirt_update(obj, cluster) if operation == "UPDATE" else []
        if causes:
            return verdict(deny(uid, causes), tuple(causes))
        return verdict(allow(uid))
    if endpoint is Endpoint.VALIDATE_PLUGIN:
        # Only a new Plugin object can enter the mixed state (docs/plugins.md).
        causes = judge_plugin_create(obj, cluster) if operation == "CREATE" else []
        if causes:
            return verdict(deny(uid, causes), tuple(causes))
        return verdict(
            allow(uid, warnings=plugin_warnings(obj, cluster) if operation == "CREATE" else [])
        )
    if endpoint is Endpoint.VALIDATE_VMI:
        causes = validate_vmi(
            obj, operation="CREATE" if operation == "CREATE" else "UPDATE", cluster=cluster, old=old
        )
    elif endpoint is Endpoint.VALIDATE_TEMPLATES:
        causes = validate_template(
            obj, operation="CREATE" if operation == "CREATE" else "UPDATE", cluster=cluster, old=old
        )
    else:
        if operation != "CREATE":
            return verdict(allow(uid))
        lookup = lookup or VMILookup()
        judged = judge_migration(obj, lookup.vmi, lookup_problem=lookup.problem)
        if judged.cca_vmi:
            return verdict(
                deny(uid, judged.violations, message=MIGRATION_REFUSAL), judged.violations
            )
        causes = list(judged.violations)
    if causes:
        return verdict(deny(uid, causes), tuple(causes))
    if endpoint is Endpoint.VALIDATE_TEMPLATES:
        return verdict(allow(uid, warnings=template_warnings(obj, cluster)))
    return verdict(allow(uid))


def template_warnings(obj: Mapping[str, Any], cluster: ClusterView) -> list[str]:
    """Warnings for an admitted VM, replica set or pool: what no node honours."""
    if cluster.cca_node_labels is None:
        return []  # nodes unknown: nothing to say, and no second parse of the object
    try:
        request = parse_request(obj)
    except RequestError:
        return []
    return capability_warnings(request, cluster) if request is not None else []
