"""The integration mode (hook sidecar or KubeVirt Plugin, docs/plugins.md) and the Plugin objects.

The mode is decided as the webhook decides it (:func:`kubevirt_cca.core.integration.decide_mode`
from ``integrationMode``, the KubeVirt CR's gates and the Plugin objects), so doctor says what
admission will do. Two checks come from it:

* **integration mode**: the mode in force and why; what stops it (fail) or the tolerated mixed
  state (warn);
* **KubeVirt plugins**: the Plugin objects; in plugin mode kubevirt-cca's own must exist, fail
  closed (``failureStrategy: Fail`` on the Plugin and its domain hook) and name our socket.
"""

from __future__ import annotations

from typing import Any

from kubevirt_cca.constants import CONFIG_MAP_NAME, PLUGINS_FEATURE_GATE, SIDECAR_FEATURE_GATE
from kubevirt_cca.core.doctor.cluster import kubevirt_cr
from kubevirt_cca.core.doctor.model import (
    Check,
    Expected,
    Snapshot,
    Status,
    dig,
    mapping,
    objects,
)
from kubevirt_cca.core.integration import (
    INTEGRATION_MODE_KEY,
    IntegrationMode,
    ModeDecision,
    decide_mode,
    parse_mode,
)
from kubevirt_cca.core.plugin import PLUGIN_NAME, PLUGIN_SOCKET
from kubevirt_cca.core.settings import settings_from_config_map
from kubevirt_cca.errors import SettingsError

GUIDE = "docs/plugins.md"
GATE_PROBLEMS = (f"{SIDECAR_FEATURE_GATE} feature gate is not enabled",
                 f"integration mode plugin needs KubeVirt's {PLUGINS_FEATURE_GATE} feature gate")
APPLY_PLUGIN = "kubectl apply -k deploy/plugin/"


def enabled_gates(kubevirt: dict[str, Any]) -> frozenset[str]:
    developer = mapping(dig(kubevirt, "spec", "configuration", "developerConfiguration"))
    on = developer.get("featureGates")
    off = developer.get("disabledFeatureGates")
    on_list = [g for g in on if isinstance(g, str)] if isinstance(on, list) else []
    off_list = [g for g in off if isinstance(g, str)] if isinstance(off, list) else []
    return frozenset(on_list) - frozenset(off_list)


def plugin_names(snapshot: Snapshot) -> list[str]:
    return sorted(str(dig(p, "metadata", "name")) for p in snapshot.plugins.items())


def decision(snapshot: Snapshot) -> ModeDecision | str:
    """The mode decision, or why it cannot be made (a sentence)."""
    kubevirt = kubevirt_cr(snapshot)
    if snapshot.kubevirts.error or kubevirt is None:
        return "no readable KubeVirt CR to read the feature gates from"
    data = mapping(dig(snapshot.config_map.value, "data")) if not snapshot.config_map.error else {}
    try:
        raw = data.get(INTEGRATION_MODE_KEY)
        configured = IntegrationMode.AUTO if raw in (None, "") else parse_mode(raw)
        settings = settings_from_config_map(data)
    except SettingsError as exc:
        return f"ConfigMap {CONFIG_MAP_NAME} is invalid: {exc}"
    version = dig(kubevirt, "status", "observedKubeVirtVersion")
    return decide_mode(configured, gates=enabled_gates(kubevirt),
                       plugin_names=plugin_names(snapshot), settings=settings,
                       kubevirt_version=version if isinstance(version, str) else None)


def sidecar_gate_needed(snapshot: Snapshot) -> bool:
    """Whether the Sidecar gate matters: not in plugin mode (unknown mode: it does)."""
    decided = decision(snapshot)
    return not (isinstance(decided, ModeDecision) and decided.mode is IntegrationMode.PLUGIN)


def check_integration_mode(snapshot: Snapshot, expected: Expected) -> Check:
    name = "integration mode"
    decided = decision(snapshot)
    namespace = expected.options.namespace
    if isinstance(decided, str):
        # The cause fails its own check above; this one only says what it blocks.
        return Check(name, Status.WARN, f"cannot decide the integration mode: {decided}",
                     fix=f"fix the KubeVirt and configuration checks above ({GUIDE})")
    summary = f"{decided.mode.value} ({decided.reason})"
    if snapshot.plugins.error and PLUGINS_FEATURE_GATE in enabled_gates(
            kubevirt_cr(snapshot) or {}):
        return Check(name, Status.FAIL, summary,
                     (f"cannot list KubeVirt Plugin objects: {snapshot.plugins.error}; the "
                      "webhook refuses CCA VMIs while it cannot either",),
                     fix="grant list/watch on plugins.plugin.kubevirt.io (deploy/webhook/"
                         "rbac.yaml does for the webhook)")
    # A gate that is off fails the feature gates check; the rest is this check's.
    problems = tuple(p for p in decided.problems if not p.startswith(GATE_PROBLEMS))
    if problems:
        return Check(name, Status.FAIL, f"{summary}: CCA VMIs are refused", problems,
                     fix=_fix(decided, namespace))
    if decided.warnings:
        return Check(name, Status.WARN, summary, decided.warnings, fix=_fix(decided, namespace))
    return Check(name, Status.OK, summary)


def _fix(decided: ModeDecision, namespace: str) -> str:
    config = f"kubectl edit configmap {CONFIG_MAP_NAME} -n {namespace}"
    if decided.mode is IntegrationMode.PLUGIN:
        return (f"turn KubeVirt's {PLUGINS_FEATURE_GATE} gate on and set dialect: "
                f"qemu-commandline ({config}), or set {INTEGRATION_MODE_KEY}: sidecar ({GUIDE})")
    return (f"set {INTEGRATION_MODE_KEY}: plugin or auto ({config}) and {APPLY_PLUGIN}, or "
            f"remove the Plugin objects / turn the {PLUGINS_FEATURE_GATE} gate off ({GUIDE})")


def check_plugins(snapshot: Snapshot) -> Check:
    """KubeVirt's Plugin objects, and kubevirt-cca's own in plugin mode."""
    name = "KubeVirt plugins"
    if snapshot.plugins.error:
        return Check(name, Status.WARN, f"cannot list KubeVirt Plugin objects: "
                     f"{snapshot.plugins.error}")
    plugins = {str(dig(p, "metadata", "name")): p for p in snapshot.plugins.items()}
    details = tuple(_describe(n, p) for n, p in sorted(plugins.items()))
    decided = decision(snapshot)
    kubevirt = kubevirt_cr(snapshot)
    gate = kubevirt is not None and PLUGINS_FEATURE_GATE in enabled_gates(kubevirt)
    if isinstance(decided, ModeDecision) and decided.mode is IntegrationMode.PLUGIN:
        ours = plugins.get(PLUGIN_NAME)
        if ours is None:
            return Check(name, Status.FAIL,
                         f"integration mode plugin, but kubevirt-cca's Plugin object "
                         f"{PLUGIN_NAME} is missing: KubeVirt would never call the Realm set-up, "
                         "so the webhook refuses CCA VMIs", details, fix=APPLY_PLUGIN)
        broken = _fail_open(ours)
        if broken:
            return Check(name, Status.FAIL,
                         f"kubevirt-cca's Plugin object {PLUGIN_NAME} does not fail closed: a "
                         "Realm VM whose domain hook fails could start as a plain VM",
                         (*broken, *details), fix=f"kubectl delete plugin {PLUGIN_NAME} && "
                                                  f"{APPLY_PLUGIN}")
        return Check(name, Status.OK, f"kubevirt-cca's Plugin {PLUGIN_NAME} (failureStrategy "
                     f"Fail) and {len(plugins) - 1} other Plugin object(s)", details)
    if gate and plugins:
        return Check(
            name, Status.WARN,
            f"the {PLUGINS_FEATURE_GATE} gate is on and {len(plugins)} Plugin object(s) exist: "
            "KubeVirt then rebuilds every domain through a library that drops "
            "<launchSecurity type='cca'>, so Realm VMs fail to start",
            tuple(f"Plugin {n}" for n in sorted(plugins)),
            fix=f"set {INTEGRATION_MODE_KEY}: plugin or auto and {APPLY_PLUGIN}; or remove the "
                f"Plugin objects, or turn the {PLUGINS_FEATURE_GATE} gate off ({GUIDE})")
    if plugins:
        return Check(name, Status.OK, f"{len(plugins)} Plugin object(s), but the "
                     f"{PLUGINS_FEATURE_GATE} gate is off: they do not touch domains", details)
    return Check(name, Status.OK, "no KubeVirt Plugin objects")


def _describe(name: str, plugin: dict[str, Any]) -> str:
    strategy = dig(plugin, "spec", "failureStrategy") or "unset"
    hooks = objects(dig(plugin, "spec", "domainHooks"))
    marker = " (kubevirt-cca's)" if name == PLUGIN_NAME else ""
    return f"Plugin {name}{marker}: failureStrategy {strategy}, {len(hooks)} domain hook(s)"


def _fail_open(plugin: dict[str, Any]) -> list[str]:
    """What keeps our Plugin object from failing closed or reaching our socket."""
    problems: list[str] = []
    if dig(plugin, "spec", "failureStrategy") != "Fail":
        problems.append(f"spec.failureStrategy is {dig(plugin, 'spec', 'failureStrategy')!r}, "
                        "expected 'Fail'")
    hooks = objects(dig(plugin, "spec", "domainHooks"))
    ours = [h for h in hooks if dig(h, "sidecar", "socketPath") == PLUGIN_SOCKET]
    if not ours:
        problems.append(f"no domain hook with sidecar.socketPath {PLUGIN_SOCKET}")
    for hook in ours:
        if hook.get("failureStrategy") != "Fail":
            problems.append(f"the domain hook's failureStrategy is "
                            f"{hook.get('failureStrategy')!r}, expected 'Fail'")
    return problems
