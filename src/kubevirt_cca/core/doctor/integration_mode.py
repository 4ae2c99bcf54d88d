"""The integration mode (hook sidecar or KubeVirt Plugin, docs/plugins.md) and the Plugin objects.

The mode is the webhook's own: :attr:`ClusterView.mode` of the view built by the webhook's
builder (``cluster.cluster_view``), so doctor says what admission will do. Two checks come from it:

* **integration mode**: the mode in force and why; what stops it (fail) or the tolerated mixed
  state (warn);
* **KubeVirt plugins**: the Plugin objects; in plugin mode kubevirt-cca's own must exist, fail
  closed (``failureStrategy: Fail`` on the Plugin and its domain hook) and name our socket.
"""

from __future__ import annotations

from typing import Any

from kubevirt_cca.constants import CONFIG_MAP_NAME, PLUGIN_NAME, PLUGIN_SOCKET, PLUGINS_FEATURE_GATE
from kubevirt_cca.core.admission.gates import ClusterView
from kubevirt_cca.core.cluster.integration import (
    GATE_PROBLEMS,
    INTEGRATION_MODE_KEY,
    IntegrationMode,
    ModeDecision,
)
from kubevirt_cca.core.doctor.model import (
    Check,
    Expected,
    Snapshot,
    Status,
    objects,
)
from kubevirt_cca.core.wire.objects import dig

GUIDE = "docs/plugins.md"
APPLY_PLUGIN = "kubectl apply -k deploy/plugin/"


def decision(view: ClusterView) -> ModeDecision | str:
    """The mode decision admission makes, or why it cannot be made (a sentence)."""
    if view.gates is None:
        return "no readable KubeVirt CR to read the feature gates from"
    if view.config_problem is not None:
        return f"ConfigMap {CONFIG_MAP_NAME} is invalid: {view.config_problem}"
    decided = view.mode
    assert decided is not None  # the gates are known
    return decided


def sidecar_gate_needed(view: ClusterView) -> bool:
    """Whether the Sidecar gate matters: not in plugin mode (unknown mode: it does)."""
    decided = decision(view)
    return not (isinstance(decided, ModeDecision) and decided.mode is IntegrationMode.PLUGIN)


def _plugins_gate(view: ClusterView) -> bool:
    return view.gates is not None and view.gates.is_enabled(PLUGINS_FEATURE_GATE)


def check_integration_mode(snapshot: Snapshot, view: ClusterView, expected: Expected) -> Check:
    name = "integration mode"
    decided = decision(view)
    namespace = expected.options.namespace
    if isinstance(decided, str):
        # The cause fails its own check above; this one only says what it blocks.
        return Check(
            name,
            Status.WARN,
            f"cannot decide the integration mode: {decided}",
            fix=f"fix the KubeVirt and configuration checks above ({GUIDE})",
        )
    summary = f"{decided.mode.value} ({decided.reason})"
    if snapshot.plugins.error and _plugins_gate(view):
        return Check(
            name,
            Status.FAIL,
            summary,
            (
                f"cannot list KubeVirt Plugin objects: {snapshot.plugins.error}; "
                "the webhook refuses CCA VMIs while it cannot either",
            ),
            fix="grant list/watch on plugins.plugin.kubevirt.io "
            "(deploy/webhook/rbac.yaml does for the webhook)",
        )
    # A gate that is off fails the feature gates check; the rest is this check's.
    problems = tuple(p.message for p in decided.problems if p.code not in GATE_PROBLEMS)
    if problems:
        return Check(
            name,
            Status.FAIL,
            f"{summary}: CCA VMIs are refused",
            problems,
            fix=_fix(decided, namespace),
        )
    if decided.warnings:
        return Check(
            name,
            Status.WARN,
            summary,
            tuple(w.message for w in decided.warnings),
            fix=_fix(decided, namespace),
        )
    return Check(name, Status.OK, summary)


def _fix(decided: ModeDecision, namespace: str) -> str:
    config = f"kubectl edit configmap {CONFIG_MAP_NAME} -n {namespace}"
    if decided.mode is IntegrationMode.PLUGIN:
        return (
            f"turn KubeVirt's {PLUGINS_FEATURE_GATE} gate on and set dialect: qemu-commandline "
            f"({config}), or set {INTEGRATION_MODE_KEY}: sidecar ({GUIDE})"
        )
    return (
        f"set {INTEGRATION_MODE_KEY}: plugin or auto ({config}) and {APPLY_PLUGIN}, "
        f"or remove the Plugin objects / turn the {PLUGINS_FEATURE_GATE} gate off ({GUIDE})"
    )


def check_plugins(snapshot: Snapshot, view: ClusterView) -> Check:
    """KubeVirt's Plugin objects, and kubevirt-cca's own in plugin mode."""
    name = "KubeVirt plugins"
    if snapshot.plugins.error:
        return Check(
            name, Status.WARN, f"cannot list KubeVirt Plugin objects: {snapshot.plugins.error}"
        )
    plugins = {str(dig(p, "metadata", "name")): p for p in snapshot.plugins.items()}
    details = tuple(_describe(n, p) for n, p in sorted(plugins.items()))
    decided = decision(view)
    gate = _plugins_gate(view)
    if isinstance(decided, ModeDecision) and decided.mode is IntegrationMode.PLUGIN:
        ours = plugins.get(PLUGIN_NAME)
        if ours is None:
            return Check(
                name,
                Status.FAIL,
                "integration mode plugin, "
                f"but kubevirt-cca's Plugin object {PLUGIN_NAME} is missing: "
                "KubeVirt would never call the Realm set-up, so the webhook refuses CCA VMIs",
                details,
                fix=APPLY_PLUGIN,
            )
        broken = _fail_open(ours)
        if broken:
            return Check(
                name,
                Status.FAIL,
                f"kubevirt-cca's Plugin object {PLUGIN_NAME} does not fail closed: "
                "a Realm VM whose domain hook fails could start as a plain VM",
                (*broken, *details),
                fix=f"kubectl delete plugin {PLUGIN_NAME} && {APPLY_PLUGIN}",
            )
        return Check(
            name,
            Status.OK,
            f"kubevirt-cca's Plugin {PLUGIN_NAME} "
            f"(failureStrategy Fail) and {len(plugins) - 1} other Plugin object(s)",
            details,
        )
    if gate and plugins:
        return Check(
            name,
            Status.WARN,
            f"the {PLUGINS_FEATURE_GATE} gate is on and {len(plugins)} Plugin object(s) exist: "
            "KubeVirt then rebuilds every domain through a library that drops <launchSecurity "
            "type='cca'>, so Realm VMs fail to start",
            tuple(f"Plugin {n}" for n in sorted(plugins)),
            fix=f"set {INTEGRATION_MODE_KEY}: plugin or auto and {APPLY_PLUGIN}; "
            f"or remove the Plugin objects, or turn the {PLUGINS_FEATURE_GATE} gate off ({GUIDE})",
        )
    if plugins:
        return Check(
            name,
            Status.OK,
            f"{len(plugins)} Plugin object(s), but the {PLUGINS_FEATURE_GATE} gate is off: "
            "they do not touch domains",
            details,
        )
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
        problems.append(
            f"spec.failureStrategy is {dig(plugin, 'spec', 'failureStrategy')!r}, expected 'Fail'"
        )
    hooks = objects(dig(plugin, "spec", "domainHooks"))
    ours = [h for h in hooks if dig(h, "sidecar", "socketPath") == PLUGIN_SOCKET]
    if not ours:
        problems.append(f"no domain hook with sidecar.socketPath {PLUGIN_SOCKET}")
    for hook in ours:
        if hook.get("failureStrategy") != "Fail":
            problems.append(
                f"the domain hook's failureStrategy is {hook.get('failureStrategy')!r}, "
                "expected 'Fail'"
            )
    return problems
