"""What the mutating webhook adds to a VMI that asks for a Realm (docs/admission.md, "Mutation").

Only unset fields are filled in; an explicit conflicting setting is a violation (never silently
overwritten). ``plan_vmi`` returns both, so the validating side can ask "would mutation still
change anything?" and refuse a labelled VMI that skipped mutation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubevirt_cca.constants import (
    HOOK_SIDECARS_ANNOTATION,
    INTEGRATION_ANNOTATION,
    RESOLVED_ANNOTATION,
)
from kubevirt_cca.core.admission import patches
from kubevirt_cca.core.admission.gates import ClusterView
from kubevirt_cca.core.admission.modes import PLUGIN_VALUE, plugin_mode
from kubevirt_cca.core.admission.patches import PatchOperation
from kubevirt_cca.core.admission.rules import (
    ARCHITECTURE,
    EVICTION_NONE,
    cluster_violations,
    sidecar_conflicts,
    sidecars_field,
    spec_conflicts,
)
from kubevirt_cca.core.admission.sidecar_entry import render_resolved, rendered_hook_entry
from kubevirt_cca.core.vmi.placement import misplaced_keys
from kubevirt_cca.core.vmi.request import CCARequest, Template, find_template, parse_template
from kubevirt_cca.core.vmi.requirements import required_node_labels
from kubevirt_cca.core.wire.objects import dig, is_object
from kubevirt_cca.errors import RequestError, Violation


@dataclass(frozen=True)
class Change:
    """One field mutation sets: where (KubeVirt-style path), to what, and the patch doing it."""

    field: str
    expected: str
    operations: tuple[PatchOperation, ...]


@dataclass(frozen=True)
class Plan:
    """The outcome of looking at a VMI: its request, the changes to make, what is refused."""

    request: CCARequest | None
    changes: tuple[Change, ...] = ()
    violations: tuple[Violation, ...] = ()

    @property
    def patch(self) -> list[PatchOperation]:
        return [op for change in self.changes for op in change.operations]


def check_template(
    template: Template, cluster: ClusterView
) -> tuple[CCARequest | None, list[Violation]]:
    """The request of a template and every reason to refuse it (VMIs and templates alike)."""
    request, violations, _ = _check(template, cluster)
    return request, violations


def _check(
    template: Template, cluster: ClusterView
) -> tuple[CCARequest | None, list[Violation], list[Any]]:
    """:func:`check_template`, plus the sidecar entries already on the template."""
    try:
        request = parse_template(template)
    except RequestError as exc:
        return None, list(exc.violations), []
    if request is None:
        return None, [], []
    violations = cluster_violations(template, cluster)
    violations.extend(spec_conflicts(template, request, cluster.settings.dialect))
    entries, sidecar_violations = sidecar_conflicts(template, request, cluster)
    violations.extend(sidecar_violations)
    return request, violations, entries


def plan_vmi(obj: Mapping[str, Any], cluster: ClusterView) -> Plan:
    """The changes that make a labelled VMI schedulable as a Realm, or why it is refused."""
    try:
        template = find_template(obj)
    except RequestError as exc:
        return Plan(None, violations=exc.violations)
    misplaced = misplaced_keys(obj)
    request, violations, entries = _check(template, cluster)
    if request is None or violations or misplaced:
        return Plan(request, violations=(*misplaced, *violations))
    return Plan(request, changes=tuple(_changes(obj, template, request, cluster, entries)))


def _changes(
    obj: Mapping[str, Any],
    template: Template,
    request: CCARequest,
    cluster: ClusterView,
    entries: list[Any],
) -> list[Change]:
    spec = template.spec
    selector = spec.get("nodeSelector")
    selector = selector if isinstance(selector, Mapping) else {}
    missing = {
        key: "true"
        for key in required_node_labels(request, cluster.settings.dialect)
        if key not in selector
    }
    ops = _add_members(obj, ("spec", "nodeSelector"), missing)
    # One change per label for the messages; the operations ride on the first one.
    changes = [
        Change(
            template.path("spec", f"nodeSelector[{key}]"),
            '"true"',
            tuple(ops) if index == 0 else (),
        )
        for index, key in enumerate(missing)
    ]
    if "architecture" not in spec:
        changes.append(
            Change(
                template.path("spec", "architecture"),
                ARCHITECTURE,
                tuple(_add_members(obj, ("spec",), {"architecture": ARCHITECTURE})),
            )
        )
    devices = dig(obj, "spec", "domain", "devices")
    if not isinstance(devices, Mapping) or "autoattachMemBalloon" not in devices:
        changes.append(
            Change(
                template.path("spec", "domain", "devices", "autoattachMemBalloon"),
                "false",
                tuple(
                    _add_members(
                        obj, ("spec", "domain", "devices"), {"autoattachMemBalloon": False}
                    )
                ),
            )
        )
    if "evictionStrategy" not in spec:
        changes.append(
            Change(
                template.path("spec", "evictionStrategy"),
                EVICTION_NONE,
                tuple(_add_members(obj, ("spec",), {"evictionStrategy": EVICTION_NONE})),
            )
        )
    changes.extend(_annotation_changes(obj, template, request, cluster, entries))
    return changes


def _annotation_changes(
    obj: Mapping[str, Any],
    template: Template,
    request: CCARequest,
    cluster: ClusterView,
    entries: list[Any],
) -> list[Change]:
    annotations = dig(obj, "metadata", "annotations")
    annotations = annotations if isinstance(annotations, Mapping) else {}
    wanted: dict[str, str] = {}
    replaced: list[PatchOperation] = []
    as_plugin = plugin_mode(cluster)
    # In plugin mode the Realm set-up is the container the pod webhook injects: no hook entry.
    expected_text = rendered_hook_entry(cluster.settings, cluster.hook_image)
    # In sidecar mode a CCA VMI carries no sidecar but ours (rules.sidecar_conflicts refuses
    # any other), so ``entries`` is either our entry already (reinvocation) or nothing: never
    # append ours beside someone else's.
    if not as_plugin and not entries:
        if HOOK_SIDECARS_ANNOTATION in annotations:
            # Present but empty ("" or "[]").
            replaced.append(
                patches.replace(
                    ("metadata", "annotations", HOOK_SIDECARS_ANNOTATION), expected_text
                )
            )
        else:
            wanted[HOOK_SIDECARS_ANNOTATION] = expected_text
    if RESOLVED_ANNOTATION not in annotations:
        wanted[RESOLVED_ANNOTATION] = render_resolved(request, cluster.settings)
    if as_plugin and INTEGRATION_ANNOTATION not in annotations:
        wanted[INTEGRATION_ANNOTATION] = PLUGIN_VALUE
    changes: list[Change] = []
    ops = [*replaced, *_add_members(obj, ("metadata", "annotations"), wanted)]
    if replaced or HOOK_SIDECARS_ANNOTATION in wanted:
        changes.append(
            Change(
                sidecars_field(template),
                f"a list holding the kubevirt-cca hook entry {expected_text}",
                tuple(ops),
            )
        )
        ops = []
    if RESOLVED_ANNOTATION in wanted:
        changes.append(
            Change(
                template.path("metadata", f"annotations[{RESOLVED_ANNOTATION}]"),
                "the record of what kubevirt-cca decided",
                tuple(ops),
            )
        )
        ops = []
    if INTEGRATION_ANNOTATION in wanted:
        changes.append(
            Change(
                template.path("metadata", f"annotations[{INTEGRATION_ANNOTATION}]"),
                f"{PLUGIN_VALUE!r} (the Realm is set up by kubevirt-cca's KubeVirt Plugin)",
                tuple(ops),
            )
        )
    return changes


def _add_members(
    obj: Mapping[str, Any], parent: Sequence[str], members: Mapping[str, Any]
) -> list[PatchOperation]:
    """``add`` operations putting ``members`` under ``parent``, creating missing parents."""
    if not members:
        return []
    node: Any = obj
    for depth, part in enumerate(parent):
        child = node.get(part) if is_object(node) else None
        if not is_object(child):
            value: Any = dict(members)
            for name in reversed(parent[depth + 1 :]):
                value = {name: value}
            return [patches.add(parent[: depth + 1], value)]
        node = child
    return [patches.add((*parent, key), value) for key, value in members.items()]
