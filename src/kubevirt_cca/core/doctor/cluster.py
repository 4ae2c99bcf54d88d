"""KubeVirt itself: present, which version, our gates, and kubevirt-cca-config.

What admission will decide comes from the webhook's own builder (:func:`cluster_view`, over
:func:`kubevirt_cca.core.admission.gates.build_view`): the same KubeVirt CR (in the webhook's
``--kubevirt-namespace``, the oldest not being deleted), the same gates, the same mode inputs.
(The integration mode and the Plugin objects are in ``integration_mode.py``.)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kubevirt_cca.constants import (
    CCA_FEATURE_GATE,
    CCA_FEATURE_GATE_NAMES,
    CONFIG_MAP_NAME,
    KUBEVIRT_VMI_CRD,
    NATIVE_CCA_SCHEMA_PATH,
    PLUGINS_FEATURE_GATE,
    SIDECAR_FEATURE_GATE,
)
from kubevirt_cca.core.admission.gates import (
    ClusterView,
    build_view,
    gates_from_kubevirt,
    kubevirt_name,
    pick_kubevirt,
)
from kubevirt_cca.core.cluster.settings import HOOK_IMAGE_KEY, settings_from_config_map
from kubevirt_cca.core.doctor import hyperconverged
from kubevirt_cca.core.doctor.model import (
    Check,
    Expected,
    Snapshot,
    Status,
    mapping,
    objects,
    strings,
    unreadable,
)
from kubevirt_cca.core.install.names import KUBEVIRT_NAMESPACE
from kubevirt_cca.core.wire.objects import dig
from kubevirt_cca.errors import SettingsError

REQUIRED_GATES = (CCA_FEATURE_GATE, SIDECAR_FEATURE_GATE)
# In integration mode plugin (docs/plugins.md) KubeVirt's Plugins gate replaces Sidecar.
PLUGIN_MODE_GATES = (CCA_FEATURE_GATE, PLUGINS_FEATURE_GATE)
HAND_OVER = "docs/admin.md, 'KubeVirt's own CCA: handing over'"


def kubevirt_namespace(snapshot: Snapshot, expected: Expected) -> str:
    """Where admission reads the KubeVirt CR: the webhook's ``--kubevirt-namespace``.

    From the webhook Deployment as it runs (its default when the flag is absent); doctor's own
    ``--kubevirt-namespace`` only when the Deployment cannot be read.
    """
    if _webhook_container(snapshot) is None:
        return expected.options.kubevirt_namespace
    return _webhook_arg(snapshot, "--kubevirt-namespace") or KUBEVIRT_NAMESPACE


def cluster_view(snapshot: Snapshot, expected: Expected) -> ClusterView:
    """The view admission would decide against, built by the webhook's own builder."""
    kubevirts, plugins, config = snapshot.kubevirts, snapshot.plugins, snapshot.config_map
    return build_view(
        kubevirts=None if kubevirts.error else kubevirts.items(),
        kubevirts_problem=kubevirts.error,
        kubevirt_namespace=kubevirt_namespace(snapshot, expected),
        config_data=None if config.error else dig(config.value, "data"),
        config_unreadable=config.error,
        plugin_names=None
        if plugins.error
        else frozenset(str(dig(p, "metadata", "name")) for p in plugins.items()),
        plugins_problem=plugins.error,
    )


def check_kubevirt(snapshot: Snapshot, view: ClusterView, expected: Expected) -> Check:
    name = "KubeVirt"
    if snapshot.kubevirts.error:
        return unreadable(name, "KubeVirt objects", snapshot.kubevirts)
    crs = snapshot.kubevirts.items()
    if not crs:
        return Check(
            name,
            Status.FAIL,
            "KubeVirt is not installed: no KubeVirt object in any namespace",
            fix="install KubeVirt first (its operator and a KubeVirt CR)",
        )
    namespace = kubevirt_namespace(snapshot, expected)
    kubevirt = view.kubevirt
    if kubevirt is None:
        elsewhere = pick_kubevirt(crs) or crs[0]
        found = dig(elsewhere, "metadata", "namespace")
        return Check(
            name,
            Status.FAIL,
            _describe(elsewhere),
            (
                f"the webhook reads the feature gates from namespace {namespace}, "
                f"but the KubeVirt CR is in {found}: it refuses every CCA VMI",
            ),
            fix=f"re-install with 'kubevirt-cca manifests --kubevirt-namespace {found}'",
        )
    summary = _describe(kubevirt)
    ignored = tuple(
        f"KubeVirt CR {other} is ignored: admission reads only {kubevirt_name(kubevirt)} "
        f"(the oldest in namespace {namespace} that is not being deleted), and so does KubeVirt"
        for other in view.ignored_kubevirts
    )
    managed = _managed_by(kubevirt)
    if dig(kubevirt, "status", "phase") != "Deployed":
        return Check(
            name,
            Status.WARN,
            summary,
            ("KubeVirt is not fully deployed yet; VMs may not start", *ignored, *managed),
            fix=f"kubectl get kubevirt -n {namespace} -o yaml, and look at status.conditions",
        )
    if ignored:
        return Check(
            name,
            Status.WARN,
            summary,
            (*ignored, *managed),
            fix="delete the KubeVirt CRs that are ignored "
            "(kubectl delete kubevirt -n NAMESPACE NAME); "
            "they change nothing but mislead whoever reads them",
        )
    return Check(name, Status.OK, summary, managed)


def _managed_by(kubevirt: Mapping[str, Any]) -> tuple[str, ...]:
    """A detail line when HCO owns the CR: edits of it are reverted."""
    hco = hyperconverged.owner(kubevirt)
    if hco is None:
        return ()
    return (
        f"managed by the HyperConverged operator: {hyperconverged.HCO_KIND} {hco} "
        f"({hco.evidence}) reverts edits of this CR; "
        f"change it through the {hyperconverged.HCO_KIND} CR ({hyperconverged.GUIDE})",
    )


def _describe(kubevirt: Mapping[str, Any]) -> str:
    version = dig(kubevirt, "status", "observedKubeVirtVersion") or "unknown version"
    phase = dig(kubevirt, "status", "phase") or "no phase"
    return f"KubeVirt {version} ({phase}), KubeVirt CR {kubevirt_name(kubevirt)}"


def _names(gate: str) -> tuple[str, ...]:
    """The names one switch goes by (kubevirt-cca's gate has three)."""
    return CCA_FEATURE_GATE_NAMES if gate == CCA_FEATURE_GATE else (gate,)


def _written_gates(kubevirt: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(featureGates, disabledFeatureGates) as the CR writes them, read by admission's one
    reader (called once the gates were readable)."""
    written = gates_from_kubevirt(kubevirt)
    return list(written.listed), list(written.disabled)


def _gate_changes(
    kubevirt: Mapping[str, Any], required: tuple[str, ...]
) -> tuple[list[str], set[str]]:
    """(gates to add to featureGates, names to take out of disabledFeatureGates)."""
    enabled, disabled = _written_gates(kubevirt)
    add = [g for g in required if not any(n in enabled for n in _names(g))]
    blocking = {n for g in required for n in _names(g)}
    return add, {g for g in disabled if g in blocking}


def gate_patch_command(
    kubevirt: Mapping[str, Any], required: tuple[str, ...] = REQUIRED_GATES
) -> str:
    """The exact ``kubectl patch`` that turns our gates on and keeps every other gate.

    A merge patch replaces a list whole, so the command carries the gates already there (as
    admission's one reader, :func:`gates_from_kubevirt`, read them).
    """
    enabled, disabled = _written_gates(kubevirt)
    add, unblock = _gate_changes(kubevirt, required)
    developer: dict[str, Any] = {"featureGates": enabled + add}
    if unblock:
        developer["disabledFeatureGates"] = [g for g in disabled if g not in unblock]
    patch = {"spec": {"configuration": {"developerConfiguration": developer}}}
    meta = mapping(kubevirt.get("metadata"))
    return (
        f"kubectl patch kubevirt {meta.get('name', 'kubevirt')} -n "
        f"{meta.get('namespace', 'kubevirt')} --type merge -p "
        f"'{json.dumps(patch, separators=(',', ':'))}'"
    )


def gate_fix(kubevirt: Mapping[str, Any], required: tuple[str, ...] = REQUIRED_GATES) -> str:
    """What turns the gates on: the patch of the KubeVirt CR, or, when HCO owns that CR (it
    would revert the patch), the jsonpatch annotation on its HyperConverged CR."""
    hco = hyperconverged.owner(kubevirt)
    if hco is None:
        return gate_patch_command(kubevirt, required)
    add, unblock = _gate_changes(kubevirt, required)
    operations = hyperconverged.gate_operations(kubevirt, add=add, unblock=unblock)
    return hyperconverged.gates_fix(hco, operations)


def check_feature_gates(
    snapshot: Snapshot, view: ClusterView, *, plugin_mode: bool = False
) -> Check:
    """Our gates: WorkloadEncryptionCCA (or an alias), and Sidecar (or Plugins in plugin mode)."""
    name = "feature gates"
    kubevirt = view.kubevirt
    if kubevirt is None:
        return Check(name, Status.FAIL, "no KubeVirt CR to hold the feature gates")
    native = _native_cca(snapshot)
    if view.gates is None:
        return Check(
            name,
            Status.FAIL,
            f"unreadable: {view.gates_problem}; CCA VMIs are refused until they can be read "
            "(fail closed)",
            native,
            fix=_unreadable_gates_fix(kubevirt),
        )
    required = PLUGIN_MODE_GATES if plugin_mode else REQUIRED_GATES
    disabled = view.gates.disabled
    details = []
    for gate in required:
        if view.gates.is_enabled(gate):
            continue
        listed_off = [n for n in _names(gate) if n in disabled]
        if listed_off:
            details.append(f"{', '.join(listed_off)} is listed in disabledFeatureGates")
        else:
            details.append(f"{gate} is not in featureGates")
    if details:
        off = ", ".join(g for g in required if not view.gates.is_enabled(g))
        return Check(
            name,
            Status.FAIL,
            f"off: {off} (CCA VMIs are refused until both are on)",
            (*details, *native),
            fix=gate_fix(kubevirt, required),
        )
    found = view.gates.cca_gate
    shown = required[0] if found == required[0] else f"{required[0]} (as {found})"
    summary = f"{shown} and {required[1]} are on"
    if native:
        return Check(
            name,
            Status.WARN,
            summary,
            native,
            fix=f"let one implementation act on CCA VMs ({HAND_OVER})",
        )
    return Check(name, Status.OK, summary)


def _unreadable_gates_fix(kubevirt: Mapping[str, Any]) -> str:
    lists = "featureGates and disabledFeatureGates are lists of gate names"
    hco = hyperconverged.owner(kubevirt)
    if hco is not None:
        # HCO writes the lists from its own CR plus the jsonpatch annotation: the annotation.
        return (
            f"correct the {hyperconverged.JSONPATCH_ANNOTATION} annotation of "
            f"{hyperconverged.HCO_KIND} {hco} (an edit of the KubeVirt CR is reverted): {lists}"
        )
    return (
        f"kubectl edit kubevirt {dig(kubevirt, 'metadata', 'name')} -n "
        f"{dig(kubevirt, 'metadata', 'namespace')}: {lists}"
    )


def _native_cca(snapshot: Snapshot) -> tuple[str, ...]:
    """A detail line when KubeVirt's own VMI schema knows CCA (it implements it natively)."""
    versions = objects(dig(snapshot.vmi_crd.value, "spec", "versions"))
    for version in versions:
        node: Any = dig(version, "schema", "openAPIV3Schema")
        for part in NATIVE_CCA_SCHEMA_PATH:
            node = dig(node, "properties", part)
        if isinstance(node, dict):
            return (
                f"KubeVirt's own VMI schema ({KUBEVIRT_VMI_CRD}, "
                f"version {version.get('name')}) has {'.'.join(NATIVE_CCA_SCHEMA_PATH)}: "
                "this KubeVirt implements CCA itself, "
                "so with kubevirt-cca installed two implementations would act on one VM",
            )
    return ()


def check_config(snapshot: Snapshot, expected: Expected) -> Check:
    name = "configuration"
    read = snapshot.config_map
    if read.error:
        return unreadable(name, f"ConfigMap {CONFIG_MAP_NAME}", read)
    if read.missing:
        return Check(name, Status.OK, f"no ConfigMap {CONFIG_MAP_NAME}: the defaults apply")
    data = mapping(dig(read.value, "data"))
    try:
        settings = settings_from_config_map(data)
    except SettingsError as exc:
        return Check(
            name,
            Status.FAIL,
            f"ConfigMap {CONFIG_MAP_NAME} is invalid: {exc}",
            fix=f"kubectl edit configmap {CONFIG_MAP_NAME} -n {expected.options.namespace} "
            "(docs/admin.md, 'Settings')",
        )
    summary = (
        f"dialect {settings.dialect.value}, firmware {settings.firmware}, "
        f"virtio IOMMU {'on' if settings.virtio_iommu else 'off'}"
    )
    hook_image = data.get(HOOK_IMAGE_KEY)
    deployed = _webhook_image(snapshot)
    if hook_image is None:
        return Check(
            name,
            Status.WARN,
            summary,
            (f"{HOOK_IMAGE_KEY} is not set: the webhook attaches its built-in default hook image",),
            fix=f"set data.{HOOK_IMAGE_KEY} to the kubevirt-cca image you run",
        )
    if deployed is not None and hook_image != deployed:
        return Check(
            name,
            Status.WARN,
            summary,
            (
                f"{HOOK_IMAGE_KEY} is {hook_image} but the webhook runs {deployed}: "
                "new Realms get a hook sidecar of another version",
            ),
            fix=f"set data.{HOOK_IMAGE_KEY} to {deployed}, "
            "or install with 'kubevirt-cca manifests --image', which sets both",
        )
    return Check(name, Status.OK, f"{summary}, hook image {hook_image}")


def _webhook_container(snapshot: Snapshot) -> dict[str, Any] | None:
    containers = objects(dig(snapshot.deployment.value, "spec", "template", "spec", "containers"))
    return next((c for c in containers if c.get("name") == "webhook"), None)


def _webhook_arg(snapshot: Snapshot, flag: str) -> str | None:
    """The value the webhook container is started with for ``flag``, if it is given."""
    args = strings(mapping(_webhook_container(snapshot)).get("args"))
    if flag in args[:-1]:
        return args[args.index(flag) + 1]
    return None


def _webhook_image(snapshot: Snapshot) -> str | None:
    containers = objects(dig(snapshot.deployment.value, "spec", "template", "spec", "containers"))
    for container in containers:
        if container.get("name") == "webhook":
            image = container.get("image")
            return image if isinstance(image, str) else None
    return None
