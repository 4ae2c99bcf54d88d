"""The entrance to the mixed state: a KubeVirt Plugin object created while we run as a hook sidecar.

In sidecar mode with KubeVirt's ``Plugins`` gate on, the first Plugin object (anyone's) makes
KubeVirt rebuild every domain through its Plugins path, after our legacy hook wrote it
(docs/plugins.md, "The mixed state"). Admission refuses *new* CCA VMIs in that state, but a CCA
VMI admitted before it and defined after it would lose its Realm (``qemu-commandline`` before
KubeVirt 1.10: silently, the VM runs as a plain VM). So the Plugin object that would create or
extend that state is refused here, by the same decision admission uses for VMIs
(:func:`kubevirt_cca.core.cluster.integration.decide_mode` through :attr:`ClusterView.mode`): the
cluster view as it would be with the new Plugin object, and its mixed-state problem.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from kubevirt_cca.core.admission.gates import ClusterView, gates_from_kubevirt, kubevirt_name
from kubevirt_cca.core.cluster.integration import (
    INTEGRATION_MODE_KEY,
    LEGACY_COMMANDLINE_SURVIVES,
    IntegrationMode,
    ProblemCode,
)
from kubevirt_cca.core.cluster.settings import Dialect
from kubevirt_cca.errors import SettingsError, Violation

GATES_FIELD = "spec.configuration.developerConfiguration.featureGates"
NAME_FIELD = "metadata.name"
_SURVIVES = ".".join(str(part) for part in LEGACY_COMMANDLINE_SURVIVES)


def with_plugin(cluster: ClusterView, name: str) -> ClusterView:
    """The cluster view as it would be once the Plugin object ``name`` exists."""
    if cluster.plugin_names is None:
        return cluster
    return dataclasses.replace(cluster, plugin_names=cluster.plugin_names | {name})


def judge_plugin_create(plugin: Mapping[str, Any], cluster: ClusterView) -> list[Violation]:
    """Why creating this Plugin object would break Realms (empty: it may be created)."""
    name = _name(plugin)
    shown = f"Plugin {name}" if name else "a Plugin object"
    if cluster.integration_mode is IntegrationMode.PLUGIN:
        return []  # configured plugin mode: no mixed state whatever the gates say
    if cluster.gates is None:
        problem = cluster.gates_problem or "the KubeVirt CR could not be read"
        return [
            Violation(
                NAME_FIELD,
                (
                    f"kubevirt-cca cannot tell whether creating {shown} would put the cluster in "
                    f"the mixed state that drops Realms ({problem}); refused until it can "
                    "(fail closed), see docs/plugins.md"
                ),
            )
        ]
    if cluster.plugin_names is None:
        return [
            Violation(
                NAME_FIELD,
                (
                    "kubevirt-cca cannot list KubeVirt's Plugin objects "
                    f"({cluster.plugins_problem or 'unknown problem'}), "
                    f"so it cannot tell whether creating {shown} would put the cluster in the "
                    "mixed state that drops Realms; refused until it can (fail closed), "
                    "see docs/plugins.md"
                ),
            )
        ]
    decision = with_plugin(cluster, name).mode
    if decision is None or decision.mode is IntegrationMode.PLUGIN:
        return []
    if cluster.config_problem is not None and any(
        p.code is ProblemCode.MIXED_STATE for p in (*decision.problems, *decision.warnings)
    ):
        # An unreadable kubevirt-cca-config hides the dialect: do not guess it is safe.
        return [
            Violation(
                NAME_FIELD,
                (
                    f"creating {shown} would put the cluster in the mixed state "
                    "(kubevirt-cca runs as a hook sidecar and KubeVirt's Plugins gate is on), "
                    f"and the ConfigMap kubevirt-cca-config is invalid ({cluster.config_problem}), "
                    "so kubevirt-cca cannot tell whether Realms would survive it; "
                    "fix the ConfigMap first, see docs/plugins.md"
                ),
            )
        ]
    if not any(p.code is ProblemCode.MIXED_STATE for p in decision.problems):
        return []
    return [Violation(NAME_FIELD, _refusal(f"creating {shown}", cluster))]


def plugin_warnings(plugin: Mapping[str, Any], cluster: ClusterView) -> list[str]:
    """The tolerated mixed state an admitted Plugin object brings (qemu-commandline on KubeVirt
    1.10 and newer), for the admin who creates it."""
    if cluster.integration_mode is IntegrationMode.PLUGIN or cluster.plugin_names is None:
        return []
    decision = with_plugin(cluster, _name(plugin)).mode
    if decision is None or decision.mode is IntegrationMode.PLUGIN:
        return []
    return [w.message for w in decision.warnings if w.code is ProblemCode.MIXED_STATE]


def judge_kubevirt_update(kubevirt: Mapping[str, Any], cluster: ClusterView) -> list[Violation]:
    """Why this update of the KubeVirt CR would enter the mixed state (empty: let it through).

    The other entrance: the ``Plugins`` gate turned on while Plugin objects exist in sidecar
    mode. Refused only when the CR is the one in force and the update makes the mixed-state
    problem appear; anything else (an unreadable view, malformed gates, a cluster already in the
    state) is let through, so that kubevirt-cca never stands in the way of KubeVirt's own
    upgrades and reconciling (the webhook's failurePolicy is Ignore for the same reason).
    """
    if cluster.kubevirt is None or cluster.gates is None or cluster.plugin_names is None:
        return []
    if kubevirt_name(kubevirt) != kubevirt_name(cluster.kubevirt):
        return []
    if _mixed(cluster):
        return []
    try:
        gates = gates_from_kubevirt(kubevirt)
    except SettingsError:
        return []
    status = kubevirt.get("status")
    version = status.get("observedKubeVirtVersion") if isinstance(status, Mapping) else None
    after = dataclasses.replace(
        cluster,
        gates=gates,
        kubevirt=kubevirt,
        kubevirt_version=version if isinstance(version, str) else "",
    )
    if not _mixed(after):
        return []
    names = ", ".join(sorted(cluster.plugin_names))
    return [
        Violation(
            GATES_FIELD,
            _refusal(
                f"turning on KubeVirt's Plugins gate while Plugin objects exist ({names})", after
            ),
        )
    ]


def _mixed(cluster: ClusterView) -> bool:
    decision = cluster.mode
    return decision is not None and any(
        p.code is ProblemCode.MIXED_STATE for p in decision.problems
    )


def _refusal(what: str, cluster: ClusterView) -> str:
    dialect = cluster.settings.dialect
    if dialect is Dialect.QEMU_COMMANDLINE:
        version = repr(cluster.kubevirt_version) if cluster.kubevirt_version else "not known"
        why = (
            f"with dialect {dialect.value} before KubeVirt {_SURVIVES} that rebuild drops the "
            "Realm's QEMU arguments and a CCA VM admitted earlier would start as a plain VM "
            f"(this KubeVirt's version is {version})"
        )
        upgrade = f", or upgrade KubeVirt to {_SURVIVES} or newer"
    else:
        why = (
            f"with dialect {dialect.value} that rebuild refuses the Realm's <launchSecurity "
            "type='cca'> and CCA VMs fail to start"
        )
        upgrade = ""
    return (
        f"{what} would put the cluster in the mixed state: kubevirt-cca runs as a hook sidecar "
        f"({INTEGRATION_MODE_KEY}=sidecar in kubevirt-cca-config) "
        "and KubeVirt's Plugins gate is on, "
        "so KubeVirt would rebuild every domain through its Plugins path after the hook wrote it; "
        f"{why}. Move kubevirt-cca to plugin mode first ({INTEGRATION_MODE_KEY}: "
        f"plugin in kubevirt-cca-config, with dialect {Dialect.QEMU_COMMANDLINE.value}){upgrade}; "
        "see docs/plugins.md"
    )


def _name(obj: Mapping[str, Any]) -> str:
    metadata = obj.get("metadata")
    value = metadata.get("name") if isinstance(metadata, Mapping) else None
    return value if isinstance(value, str) else ""
