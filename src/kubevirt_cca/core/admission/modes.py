"""Admission under the two integration modes (hook sidecar or KubeVirt Plugin, VEP 190).

The cluster view resolves the mode (:attr:`ClusterView.mode`). Here is what admission makes of
it: the refusals a mode brings (its problems, a missing or unlisted Plugin object), and the
integration annotation a CCA VMI admitted in plugin mode carries instead of the hook entry.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from kubevirt_cca.constants import INTEGRATION_ANNOTATION, PLUGIN_NAME, PLUGINS_FEATURE_GATE
from kubevirt_cca.core.admission.gates import ClusterView
from kubevirt_cca.core.cluster.integration import IntegrationMode, Problem, ProblemCode
from kubevirt_cca.core.vmi.request import Template
from kubevirt_cca.errors import Violation

PLUGIN_VALUE = IntegrationMode.PLUGIN.value
_ADMIN = "CCA VMIs are refused until the cluster admin fixes it (see docs/plugins.md)"


def plugin_mode(cluster: ClusterView) -> bool:
    """Whether the Realm set-up goes through KubeVirt's Plugins path."""
    decision = cluster.mode
    return decision is not None and decision.mode is IntegrationMode.PLUGIN


def mode_problems(cluster: ClusterView) -> list[Problem]:
    """Why a CCA VMI cannot work in the mode in force (empty: it can, or gates are unknown)."""
    decision = cluster.mode
    if decision is None or cluster.gates is None:
        return []
    problems = list(decision.problems)
    plugins_on = cluster.gates.is_enabled(PLUGINS_FEATURE_GATE)
    matters = decision.mode is IntegrationMode.PLUGIN or plugins_on
    if cluster.plugin_names is None:
        if matters:
            problems.append(
                Problem(
                    ProblemCode.PLUGINS_UNLISTABLE,
                    "kubevirt-cca cannot list KubeVirt's Plugin objects "
                    f"({cluster.plugins_problem or 'unknown problem'}), "
                    "so it cannot tell whether a Realm would be set up; refused until it can "
                    "(fail closed)",
                )
            )
    elif decision.mode is IntegrationMode.PLUGIN and PLUGIN_NAME not in cluster.plugin_names:
        problems.append(
            Problem(
                ProblemCode.PLUGIN_OBJECT_MISSING,
                f"integration mode plugin ({decision.reason}) needs kubevirt-cca's Plugin object "
                f"(plugin.kubevirt.io/v1alpha1 Plugin {PLUGIN_NAME}), which does not exist: "
                "without it KubeVirt never calls the Realm set-up and the VM would start as a "
                "plain VM",
            )
        )
    return problems


def mode_violations(
    field: str, cluster: ClusterView, *, reported: Collection[ProblemCode] = ()
) -> list[Violation]:
    """:func:`mode_problems` as violations on ``field`` (the enable label's path), leaving out
    the codes the caller ``reported`` in its own words."""
    return [
        Violation(field, f"{problem.message}; {_ADMIN}")
        for problem in mode_problems(cluster)
        if problem.code not in reported
    ]


def mode_warnings(cluster: ClusterView) -> list[str]:
    """What admits a CCA VMI but deserves the owner's attention (the tolerated mixed state)."""
    decision = cluster.mode
    return [w.message for w in decision.warnings] if decision is not None else []


def marker_conflicts(template: Template, cluster: ClusterView) -> list[Violation]:
    """An integration annotation that disagrees with the mode in force (it is ours to write)."""
    annotations = template.metadata.get("annotations")
    annotations = annotations if isinstance(annotations, Mapping) else {}
    if INTEGRATION_ANNOTATION not in annotations:
        return []
    value = annotations[INTEGRATION_ANNOTATION]
    expected = PLUGIN_VALUE if plugin_mode(cluster) else None
    if value == expected:
        return []
    field = template.path("metadata", f"annotations[{INTEGRATION_ANNOTATION}]")
    if expected is None:
        return [
            Violation(
                field,
                (
                    "is written by kubevirt-cca in plugin mode only, "
                    f"and this cluster runs it as a hook sidecar; remove it (got {_shown(value)})"
                ),
            )
        ]
    return [
        Violation(
            field,
            (
                f"is written by kubevirt-cca at admission and must be {PLUGIN_VALUE!r} here; "
                f"remove it (got {_shown(value)})"
            ),
        )
    ]


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
