"""The checks every CCA template gets, whether a VMI being created or a VM's template.

Each function returns violations (never raises) so admission can report all of them at once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from kubevirt_cca.constants import (
    CCA_FEATURE_GATE,
    CONFIG_MAP_NAME,
    ENABLED_LABEL,
    HOOK_SIDECARS_ANNOTATION,
    MEASUREMENT_ALGO_KEY,
    RESOLVED_ANNOTATION,
    SIDECAR_FEATURE_GATE,
)
from kubevirt_cca.core.admission.gates import ClusterView
from kubevirt_cca.core.admission.modes import marker_conflicts, mode_violations, plugin_mode
from kubevirt_cca.core.admission.sidecar_entry import (
    ONLY_OUR_SIDECAR,
    describe_entries,
    hook_entry,
    looks_like_ours,
    parse_resolved,
    parse_sidecars,
    resolved_record,
)
from kubevirt_cca.core.cluster.integration import ProblemCode
from kubevirt_cca.core.cluster.settings import Dialect
from kubevirt_cca.core.vmi.request import CCARequest, Template
from kubevirt_cca.core.vmi.requirements import (
    honoured_algorithms,
    required_node_labels,
    unhonoured,
)
from kubevirt_cca.core.wire.objects import dig
from kubevirt_cca.errors import Violation

ARCHITECTURE = "arm64"
EVICTION_NONE = "None"
MIGRATING_EVICTIONS = ("LiveMigrate", "LiveMigrateIfPossible")


def label_field(template: Template) -> str:
    return template.path("metadata", f"labels[{ENABLED_LABEL}]")


def cluster_violations(template: Template, cluster: ClusterView) -> list[Violation]:
    """Refusals that come from the cluster, not the object: gates, unreadable state, config."""
    field = label_field(template)
    if cluster.gates is None:
        problem = cluster.gates_problem or "the KubeVirt CR could not be read"
        return [
            Violation(
                field,
                (
                    f"kubevirt-cca cannot tell whether the {CCA_FEATURE_GATE} and "
                    f"{SIDECAR_FEATURE_GATE} feature gates are on ({problem}); "
                    "CCA VMIs are refused until it can (fail closed). Try again shortly; "
                    "if it persists, "
                    "ask the cluster admin to check the kubevirt-cca webhook's access to the "
                    "KubeVirt CR"
                ),
            )
        ]
    violations: list[Violation] = []
    if not cluster.gates.is_enabled(CCA_FEATURE_GATE):
        violations.append(
            Violation(field, f"{CCA_FEATURE_GATE} feature gate is not enabled in kubevirt-config")
        )
    sidecar_mode = not plugin_mode(cluster)
    if sidecar_mode and not cluster.gates.is_enabled(SIDECAR_FEATURE_GATE):
        violations.append(
            Violation(
                field,
                (
                    f"{SIDECAR_FEATURE_GATE} feature gate is not enabled in kubevirt-config; "
                    "kubevirt-cca sets up the Realm from a hook sidecar, "
                    "which KubeVirt runs only with that gate on"
                ),
            )
        )
    # The mode's other problems (the Sidecar gate is reported above, in its own words).
    violations.extend(mode_violations(field, cluster, reported={ProblemCode.SIDECAR_GATE_OFF}))
    if cluster.config_problem is not None:
        violations.append(
            Violation(
                field,
                (
                    f"the ConfigMap {CONFIG_MAP_NAME} is invalid ({cluster.config_problem}); "
                    "CCA VMIs are refused until the cluster admin fixes it"
                ),
            )
        )
    return violations


def spec_conflicts(
    template: Template, request: CCARequest, dialect: Dialect = Dialect.VEP
) -> list[Violation]:
    """Explicit settings a Realm cannot have. Unset ones are fine (mutation fills them in)."""
    spec = template.spec
    violations: list[Violation] = []
    arch = spec.get("architecture")
    if arch is not None and arch != ARCHITECTURE:
        violations.append(
            Violation(
                template.path("spec", "architecture"),
                (
                    f"a CCA Realm runs only on {ARCHITECTURE}, got {_shown(arch)}; "
                    f"set architecture to {ARCHITECTURE} or leave it unset"
                ),
            )
        )
    eviction = spec.get("evictionStrategy")
    if eviction is not None and (not isinstance(eviction, str) or eviction in MIGRATING_EVICTIONS):
        violations.append(
            Violation(
                template.path("spec", "evictionStrategy"),
                (
                    "a CCA Realm cannot be live-migrated, "
                    f"so eviction strategy {_shown(eviction)} would hang node drains; "
                    "use None or External, or leave it unset"
                ),
            )
        )
    violations.extend(_balloon_conflicts(template))
    violations.extend(_node_selector_conflicts(template, request, dialect))
    violations.extend(_affinity_conflicts(template, request, dialect))
    return violations


def sidecar_conflicts(
    template: Template, request: CCARequest, cluster: ClusterView
) -> tuple[list[Any], list[Violation]]:
    """The user's sidecar entries, and problems with the annotation or with an entry of ours."""
    annotations = template.metadata.get("annotations")
    annotations = annotations if isinstance(annotations, Mapping) else {}
    parsed = parse_sidecars(annotations, template.prefix)
    violations = list(parsed.violations)
    expected = hook_entry(cluster.settings, cluster.hook_image)
    ours = [entry for entry in parsed.entries if looks_like_ours(entry)]
    if plugin_mode(cluster):
        # The Plugins path calls kubevirt-cca after every hook sidecar, so the user's own
        # sidecars cannot undo the Realm there (docs/plugins.md); an entry of ours can only be
        # a copy from a sidecar-mode cluster.
        if ours:
            violations.append(
                Violation(
                    sidecars_field(template),
                    (
                        'holds a kubevirt-cca hook entry (args starting with "hook"), but this '
                        "cluster runs kubevirt-cca as a KubeVirt Plugin (integration mode plugin), "
                        "which sets up the Realm from its own container; remove the entry"
                    ),
                )
            )
    else:
        foreign = [entry for entry in parsed.entries if not looks_like_ours(entry)]
        if foreign:
            violations.append(
                Violation(sidecars_field(template), foreign_sidecars_message(foreign))
            )
        if ours and ours != [expected]:
            violations.append(
                Violation(
                    sidecars_field(template),
                    (
                        'holds a kubevirt-cca hook entry (args starting with "hook") that '
                        "differs from the one this cluster's configuration gives "
                        f"({_compact(expected)}); remove it, kubevirt-cca adds its own"
                    ),
                )
            )
    resolved_raw = annotations.get(RESOLVED_ANNOTATION)
    if resolved_raw is not None and parse_resolved(resolved_raw) != resolved_record(
        request, cluster.settings
    ):
        violations.append(
            Violation(
                template.path("metadata", f"annotations[{RESOLVED_ANNOTATION}]"),
                "is written by kubevirt-cca at admission and does not match what it decides here; "
                "remove it",
            )
        )
    violations.extend(marker_conflicts(template, cluster))
    return list(parsed.entries), violations


def sidecars_field(template: Template) -> str:
    return template.path("metadata", f"annotations[{HOOK_SIDECARS_ANNOTATION}]")


def foreign_sidecars_message(foreign: Sequence[Any]) -> str:
    """Why a CCA VMI in sidecar mode may carry no hook sidecar but kubevirt-cca's."""
    return (
        f"holds {describe_entries(foreign)} that kubevirt-cca did not write; {ONLY_OUR_SIDECAR}. "
        "Expected: no hooks.kubevirt.io/hookSidecars annotation "
        "(kubevirt-cca adds its own entry); remove the other entries (docs/vm-owners.md)"
    )


def added_sidecars_message(added: Sequence[Any]) -> str:
    """Why an UPDATE may not add a sidecar entry to an existing CCA VMI."""
    return (
        "cannot gain hook sidecar entries on an existing CCA VMI, "
        f"got {describe_entries(added)} more; {ONLY_OUR_SIDECAR}. Expected: "
        "the list as it was at creation"
    )


def _balloon_conflicts(template: Template) -> list[Violation]:
    domain = template.spec.get("domain")
    if domain is None:
        return []
    if not isinstance(domain, Mapping):
        return [Violation(template.path("spec", "domain"), "expected an object")]
    devices = domain.get("devices")
    if devices is None:
        return []
    if not isinstance(devices, Mapping):
        return [Violation(template.path("spec", "domain", "devices"), "expected an object")]
    balloon = devices.get("autoattachMemBalloon")
    if balloon is None or balloon is False:
        return []
    return [
        Violation(
            template.path("spec", "domain", "devices", "autoattachMemBalloon"),
            (
                "a CCA Realm cannot use a memory balloon "
                "(the guest's balloon driver refuses the bounce-buffer feature every Realm device "
                "needs); set it to false or leave it unset"
            ),
        )
    ]


def _node_selector_conflicts(
    template: Template, request: CCARequest, dialect: Dialect
) -> list[Violation]:
    selector = template.spec.get("nodeSelector")
    if selector is None:
        return []
    if not isinstance(selector, Mapping):
        return [
            Violation(
                template.path("spec", "nodeSelector"), "expected a map of node label keys to values"
            )
        ]
    violations: list[Violation] = []
    for key in required_node_labels(request, dialect):
        if key in selector and selector[key] != "true":
            violations.append(
                Violation(
                    template.path("spec", f"nodeSelector[{key}]"),
                    (
                        f'must be "true" for a CCA Realm (only nodes labelled {key}=true can run '
                        f"it), got {_shown(selector[key])}; remove it, kubevirt-cca sets it"
                    ),
                )
            )
    return violations


def capability_warnings(request: CCARequest, cluster: ClusterView) -> list[str]:
    """A warning when no node in the cluster honours everything ``request`` asks for.

    The object is admitted all the same (a node may gain the capability later; refusing would
    make every VM owner wait for the last node to be labelled): its VMI stays Pending, never
    runs without what it asked for. Nothing is said while the nodes are unknown.
    """
    if cluster.cca_node_labels is None:
        return []
    missing = unhonoured(request, cluster.settings.dialect, cluster.cca_node_labels)
    if not missing:
        return []
    what = ", ".join(f"{r.capability} (node label {r.label}=true)" for r in missing)
    warning = (
        f"no node in this cluster honours {what} with the {cluster.settings.dialect.value} "
        "dialect: the VMI stays Pending until a node does; "
        "remove the parameter to run on the nodes there are (docs/vm-owners.md)"
    )
    if any(r.parameter == MEASUREMENT_ALGO_KEY for r in missing):
        warning += _algorithm_note(cluster)
    return [warning]


def _algorithm_note(cluster: ClusterView) -> str:
    """Which algorithms the CCA nodes do honour: a stack that gives a Realm no choice (NVIDIA's,
    Linaro's RFC v4 QEMU) measures with sha512 whatever is asked (docs/node-labels.md)."""
    algorithms = honoured_algorithms(cluster.settings.dialect, cluster.cca_node_labels or ())
    if algorithms:
        listed = ", ".join(algorithms)
        return f". The CCA nodes here honour measurementAlgo {listed} only"
    return (
        ". No CCA node here lets a Realm choose its measurement algorithm "
        "(where the stack gives no choice, a Realm is measured with sha512)"
    )


def _affinity_conflicts(
    template: Template, request: CCARequest, dialect: Dialect
) -> list[Violation]:
    """The user's required node affinity may narrow the nodes, never exclude the ones we need.

    Its terms are alternatives: a label conflicts when every term rules out ``label=true``.
    """
    path = (
        "spec",
        "affinity",
        "nodeAffinity",
        "requiredDuringSchedulingIgnoredDuringExecution",
        "nodeSelectorTerms",
    )
    node = dig(template.spec, *path[1:])
    if not isinstance(node, list) or not node:
        return []
    violations: list[Violation] = []
    for key in required_node_labels(request, dialect):
        if all(_term_excludes(term, key) for term in node):
            violations.append(
                Violation(
                    template.path(*path),
                    (
                        f"rules out nodes labelled {key}=true, "
                        "the only nodes that can run this Realm as asked; "
                        "kubevirt-cca adds that label to spec.nodeSelector, "
                        "so remove the expression on it (or the CCA parameter that needs it)"
                    ),
                )
            )
    return violations


def _term_excludes(term: Any, key: str) -> bool:
    """Whether one node selector term can never match a node whose label ``key`` is "true"."""
    expressions = term.get("matchExpressions") if isinstance(term, Mapping) else None
    for expression in expressions if isinstance(expressions, list) else []:
        if not isinstance(expression, Mapping) or expression.get("key") != key:
            continue
        operator, values = expression.get("operator"), expression.get("values") or []
        if (
            operator == "DoesNotExist"
            or (operator == "NotIn" and "true" in values)
            or (operator == "In" and "true" not in values)
            or operator in ("Gt", "Lt")
        ):
            return True
    return False


def _shown(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else _compact(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)
