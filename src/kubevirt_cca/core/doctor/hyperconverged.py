"""OpenShift Virtualization and HCO: a KubeVirt CR owned by the HyperConverged operator.

HCO (kubevirt/hyperconverged-cluster-operator) generates the KubeVirt CR from its
HyperConverged CR and reverts every edit of it, and its API does not expose KubeVirt's
``Sidecar`` gate (nor kubevirt-cca's own). The way HCO offers for what it does not expose is a
JSON patch in the annotation ``kubevirt.kubevirt.io/jsonpatch`` on the HyperConverged CR,
which it applies to the KubeVirt CR it generates; HCO's documentation says a cluster with such
an annotation is not supported (its alert ``UnsupportedHCOModification`` fires).

doctor recognises such a CR by what HCO writes on it: a controller ownerReference to a
``hco.kubevirt.io`` HyperConverged, or the label ``app.kubernetes.io/managed-by: hco-operator``
(with the HyperConverged's name in the label ``app``), and gives the annotation instead of a
``kubectl patch`` that HCO would undo (docs/install.md, "On OpenShift / with HCO").
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubevirt_cca.core.doctor.model import mapping, objects, strings
from kubevirt_cca.core.wire.objects import dig

HCO_GROUP = "hco.kubevirt.io"
HCO_KIND = "HyperConverged"
HCO_DEFAULT_NAME = "kubevirt-hyperconverged"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
HCO_MANAGER = "hco-operator"
APP_LABEL = "app"  # HCO's operands carry the HyperConverged's name here
JSONPATCH_ANNOTATION = "kubevirt.kubevirt.io/jsonpatch"
DEVELOPER = "/spec/configuration/developerConfiguration"
GUIDE = "docs/install.md, 'On OpenShift / with HCO'"


@dataclass(frozen=True)
class HyperConverged:
    """The HyperConverged CR that owns a KubeVirt CR, and how doctor knows."""

    namespace: str
    name: str
    evidence: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def owner(kubevirt: Mapping[str, Any]) -> HyperConverged | None:
    """The HyperConverged that manages ``kubevirt``, or ``None`` when nothing says HCO does.

    HCO creates its operands in its own namespace, so the HyperConverged is in the KubeVirt
    CR's namespace.
    """
    meta = mapping(kubevirt.get("metadata"))
    namespace = str(meta.get("namespace") or "")
    for reference in objects(meta.get("ownerReferences")):
        api = reference.get("apiVersion")
        if (
            isinstance(api, str)
            and api.split("/")[0] == HCO_GROUP
            and reference.get("kind") == HCO_KIND
        ):
            name = reference.get("name")
            return HyperConverged(
                namespace,
                name if isinstance(name, str) and name else HCO_DEFAULT_NAME,
                f"ownerReference to {HCO_KIND} {api}",
            )
    labels = mapping(meta.get("labels"))
    if labels.get(MANAGED_BY_LABEL) == HCO_MANAGER:
        app = labels.get(APP_LABEL)
        return HyperConverged(
            namespace,
            app if isinstance(app, str) and app else HCO_DEFAULT_NAME,
            f"label {MANAGED_BY_LABEL}={HCO_MANAGER}",
        )
    return None


def gate_operations(
    kubevirt: Mapping[str, Any], *, add: list[str], unblock: set[str]
) -> list[dict[str, Any]]:
    """The RFC 6902 operations that turn gates on in the KubeVirt CR HCO generates: ``add``
    appended to ``featureGates``, every name in ``unblock`` taken out of
    ``disabledFeatureGates``.

    Appended one by one (``featureGates/-``) as HCO's documentation shows; where the generated
    CR has no such list, the list (or developerConfiguration) is added whole. A disabled name is
    removed by its index, highest first, so the other indexes stay right.
    """
    developer = dig(kubevirt, "spec", "configuration", "developerConfiguration")
    disabled = strings(dig(developer, "disabledFeatureGates"))
    return _removals(disabled, unblock) + (_additions(developer, add) if add else [])


def _removals(disabled: list[str], blocking: set[str]) -> list[dict[str, Any]]:
    indexes = [i for i, gate in enumerate(disabled) if gate in blocking]
    return [
        {"op": "remove", "path": f"{DEVELOPER}/disabledFeatureGates/{i}"}
        for i in sorted(indexes, reverse=True)
    ]


def _additions(developer: Any, gates: list[str]) -> list[dict[str, Any]]:
    if isinstance(developer, dict) and isinstance(developer.get("featureGates"), list):
        return [{"op": "add", "path": f"{DEVELOPER}/featureGates/-", "value": g} for g in gates]
    if isinstance(developer, dict):
        return [{"op": "add", "path": f"{DEVELOPER}/featureGates", "value": gates}]
    return [{"op": "add", "path": DEVELOPER, "value": {"featureGates": gates}}]


def annotate_command(hco: HyperConverged, operations: list[dict[str, Any]]) -> str:
    """The exact ``kubectl annotate`` that puts ``operations`` on the HyperConverged CR."""
    patch = json.dumps(operations, separators=(",", ":"))
    return (
        f"kubectl annotate --overwrite -n {hco.namespace} hco {hco.name} "
        f"{JSONPATCH_ANNOTATION}='{patch}'"
    )


def gates_fix(hco: HyperConverged, operations: list[dict[str, Any]]) -> str:
    """The whole fix line for gates that are off under HCO."""
    key = JSONPATCH_ANNOTATION.replace(".", "\\.")  # jsonpath escapes the dots of a key
    return (
        f"{annotate_command(hco, operations)} (HCO applies it to the KubeVirt CR it generates; "
        "--overwrite replaces an annotation already there, so put its operations in the list too: "
        f"kubectl get hco -n {hco.namespace} {hco.name} -o "
        f"jsonpath='{{.metadata.annotations.{key}}}'. "
        f"HCO's documentation says a jsonpatch annotation makes the cluster unsupported; {GUIDE})"
    )
