"""KubeVirt itself: present, which version, our gates, and kubevirt-cca-config.

(The integration mode and the Plugin objects are in ``integration.py``.)
"""

from __future__ import annotations

import json
from typing import Any

from kubevirt_cca.constants import (
    CCA_FEATURE_GATE,
    CONFIG_MAP_NAME,
    PLUGINS_FEATURE_GATE,
    SIDECAR_FEATURE_GATE,
)
from kubevirt_cca.core.doctor.model import (
    Check,
    Expected,
    Snapshot,
    Status,
    dig,
    mapping,
    objects,
    strings,
    unreadable,
)
from kubevirt_cca.core.settings import HOOK_IMAGE_KEY, settings_from_config_map
from kubevirt_cca.errors import SettingsError

REQUIRED_GATES = (CCA_FEATURE_GATE, SIDECAR_FEATURE_GATE)
# In integration mode plugin (docs/plugins.md) KubeVirt's Plugins gate replaces Sidecar.
PLUGIN_MODE_GATES = (CCA_FEATURE_GATE, PLUGINS_FEATURE_GATE)


def kubevirt_cr(snapshot: Snapshot) -> dict[str, Any] | None:
    """The KubeVirt CR (there is at most one per cluster)."""
    items = snapshot.kubevirts.items()
    return items[0] if items else None


def gates(kubevirt: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(featureGates, disabledFeatureGates) of developerConfiguration."""
    developer = mapping(dig(kubevirt, "spec", "configuration", "developerConfiguration"))
    enabled = strings(developer.get("featureGates"))
    disabled = strings(developer.get("disabledFeatureGates"))
    return enabled, disabled


def gate_on(kubevirt: dict[str, Any], gate: str) -> bool:
    enabled, disabled = gates(kubevirt)
    return gate in enabled and gate not in disabled


def check_kubevirt(snapshot: Snapshot) -> Check:
    name = "KubeVirt"
    if snapshot.kubevirts.error:
        return unreadable(name, "KubeVirt objects", snapshot.kubevirts)
    kubevirt = kubevirt_cr(snapshot)
    if kubevirt is None:
        return Check(name, Status.FAIL, "KubeVirt is not installed: no KubeVirt object in any "
                     "namespace", fix="install KubeVirt first (its operator and a KubeVirt CR)")
    where = f"{dig(kubevirt, 'metadata', 'namespace')}/{dig(kubevirt, 'metadata', 'name')}"
    version = dig(kubevirt, "status", "observedKubeVirtVersion") or "unknown version"
    phase = dig(kubevirt, "status", "phase") or "no phase"
    summary = f"KubeVirt {version} ({phase}), KubeVirt CR {where}"
    watched = _webhook_arg(snapshot, "--kubevirt-namespace")
    namespace = dig(kubevirt, "metadata", "namespace")
    if watched is not None and watched != namespace:
        return Check(name, Status.FAIL, summary,
                     (f"the webhook reads the feature gates from namespace {watched}, but the "
                      f"KubeVirt CR is in {namespace}: it refuses every CCA VMI",),
                     fix=f"re-install with 'kubevirt-cca manifests --kubevirt-namespace "
                         f"{namespace}'")
    if phase != "Deployed":
        return Check(name, Status.WARN, summary,
                     ("KubeVirt is not fully deployed yet; VMs may not start",),
                     fix=f"kubectl get kubevirt -n {dig(kubevirt, 'metadata', 'namespace')} -o "
                         "yaml, and look at status.conditions")
    return Check(name, Status.OK, summary)


def gate_patch_command(kubevirt: dict[str, Any],
                       required: tuple[str, ...] = REQUIRED_GATES) -> str:
    """The exact ``kubectl patch`` that turns our gates on and keeps every other gate.

    A merge patch replaces a list whole, so the command carries the gates already there.
    """
    enabled, disabled = gates(kubevirt)
    developer: dict[str, Any] = {
        "featureGates": enabled + [g for g in required if g not in enabled]}
    if any(g in disabled for g in required):
        developer["disabledFeatureGates"] = [g for g in disabled if g not in required]
    patch = {"spec": {"configuration": {"developerConfiguration": developer}}}
    meta = mapping(kubevirt.get("metadata"))
    return (f"kubectl patch kubevirt {meta.get('name', 'kubevirt')} -n "
            f"{meta.get('namespace', 'kubevirt')} --type merge -p "
            f"'{json.dumps(patch, separators=(',', ':'))}'")


def check_feature_gates(snapshot: Snapshot, *, plugin_mode: bool = False) -> Check:
    """Our gates: WorkloadEncryptionCCA, and Sidecar (or Plugins in plugin mode)."""
    name = "feature gates"
    kubevirt = kubevirt_cr(snapshot)
    if kubevirt is None:
        return Check(name, Status.FAIL, "no KubeVirt CR to hold the feature gates")
    required = PLUGIN_MODE_GATES if plugin_mode else REQUIRED_GATES
    enabled, disabled = gates(kubevirt)
    details = []
    for gate in required:
        if gate in disabled:
            details.append(f"{gate} is listed in disabledFeatureGates")
        elif gate not in enabled:
            details.append(f"{gate} is not in featureGates")
    if details:
        off = ", ".join(g for g in required if not gate_on(kubevirt, g))
        return Check(name, Status.FAIL, f"off: {off} (CCA VMIs are refused until both are on)",
                     tuple(details), fix=gate_patch_command(kubevirt, required))
    return Check(name, Status.OK, f"{required[0]} and {required[1]} are on")


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
        return Check(name, Status.FAIL, f"ConfigMap {CONFIG_MAP_NAME} is invalid: {exc}",
                     fix=f"kubectl edit configmap {CONFIG_MAP_NAME} -n "
                         f"{expected.options.namespace} (docs/admin.md, 'Settings')")
    summary = (f"dialect {settings.dialect.value}, firmware {settings.firmware}, virtio IOMMU "
               f"{'on' if settings.virtio_iommu else 'off'}")
    hook_image = data.get(HOOK_IMAGE_KEY)
    deployed = _webhook_image(snapshot)
    if hook_image is None:
        return Check(name, Status.WARN, summary,
                     (f"{HOOK_IMAGE_KEY} is not set: the webhook attaches its built-in default "
                      "hook image",),
                     fix=f"set data.{HOOK_IMAGE_KEY} to the kubevirt-cca image you run")
    if deployed is not None and hook_image != deployed:
        return Check(name, Status.WARN, summary,
                     (f"{HOOK_IMAGE_KEY} is {hook_image} but the webhook runs {deployed}: "
                      "new Realms get a hook sidecar of another version",),
                     fix=f"set data.{HOOK_IMAGE_KEY} to {deployed}, or install with "
                         "'kubevirt-cca manifests --image', which sets both")
    return Check(name, Status.OK, f"{summary}, hook image {hook_image}")


def _webhook_arg(snapshot: Snapshot, flag: str) -> str | None:
    """The value the webhook container is started with for ``flag``, if it is given."""
    containers = objects(dig(snapshot.deployment.value, "spec", "template", "spec", "containers"))
    for container in containers:
        args = strings(container.get("args")) if container.get("name") == "webhook" else []
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
