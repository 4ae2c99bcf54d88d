"""What the node labeller writes on its Node, and the JSON patch that gets it there.

Pure: a detection report and the Node's current metadata in, a :class:`NodePlan` out. The
adapter (``adapters/node_labeller.py``) reads the Node, asks :func:`plan_node` what to do, and sends
the patch as is.

The rules (docs/node-labels.md):

- The labeller owns the labels :func:`~kubevirt_cca.core.node.labels.is_owned_label` accepts
  and the one annotation ``cca.kubevirt.io/detection``. Its patch never names another key.
- An owned label that the report no longer calls for is removed.
- A Node annotated ``node-labeller.kubevirt.io/skip-node`` (any value, as KubeVirt's own
  labeller reads it) is left alone entirely: nothing is added, changed or removed.
- The admin's annotation ``cca.kubevirt.io/libvirt-honours`` on the Node adds the parameters
  it names to a capable node's report before anything is planned (``core/node/overrides.py``); the
  labeller reads it and never writes it.
- Nothing changed, nothing written: the plan's patch is empty. The report's ``checkedAt`` is
  not a change: the annotation is rewritten only when the rest of the report differs, so its
  ``checkedAt`` says when the node's verdict or evidence last changed.
- Removing owned labels never depends on anything else fitting: when a plan removes labels, the
  removals are a patch of their own, sent first (:attr:`NodePlan.patches`). Additions, changes
  and the detection annotation follow in a second patch, so a "capable" label is only ever added
  together with the report that supports it. An annotation the API server refuses (the Node's
  annotations are capped at 256 KiB together) therefore cannot keep a stale capable label.
- Every patch is guarded: before touching a map it ``test``\\ s the whole map as it was read
  (KubeVirt's node labeller does the same), so a concurrent change to that map makes the API
  server refuse the patch (HTTP 422) and the adapter re-reads and retries. A map that does not
  exist yet cannot be tested (RFC 6902 has no "absent" test); creating it is guarded by a
  ``test`` of ``metadata.resourceVersion`` instead.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from kubevirt_cca.constants import (
    KUBEVIRT_SKIP_NODE_ANNOTATION,
    NODE_ALGO_LABEL_PREFIX,
    NODE_CCA_LABEL,
    NODE_DETECTION_ANNOTATION,
    NODE_HONOURS_OVERRIDE_ANNOTATION,
)
from kubevirt_cca.core.node.detection_report import DetectionReport
from kubevirt_cca.core.node.labels import is_owned_label, node_labels
from kubevirt_cca.core.node.overrides import apply_override
from kubevirt_cca.core.wire import json_patch
from kubevirt_cca.core.wire.json_patch import PatchOperation

# Kubernetes keeps an Event message short; longer ones are cut here with an ellipsis.
EVENT_MESSAGE_LIMIT = 1024
_CHECKED_AT = "checkedAt"


@dataclass(frozen=True)
class NodeMetadata:
    """The parts of a Node the labeller reads. A map that is absent on the Node is ``None``."""

    name: str
    labels: Mapping[str, str] | None
    annotations: Mapping[str, str] | None
    resource_version: str | None = None
    uid: str | None = None

    @classmethod
    def from_object(cls, node: Mapping[str, Any]) -> NodeMetadata:
        """Read a Node object as the API server returns it (a JSON dict)."""
        metadata = node.get("metadata") or {}
        labels = metadata.get("labels")
        annotations = metadata.get("annotations")
        return cls(
            name=str(metadata.get("name", "")),
            labels=dict(labels) if labels is not None else None,
            annotations=dict(annotations) if annotations is not None else None,
            resource_version=metadata.get("resourceVersion"),
            uid=metadata.get("uid"),
        )


@dataclass(frozen=True)
class Capability:
    """What the owned labels say a node can do: Realms at all, and with which algorithms."""

    capable: bool
    measurement_algorithms: frozenset[str] = frozenset()
    others: frozenset[str] = frozenset()
    """Every other owned label set to "true" (parameters, QEMU's rme-guest algorithms)."""

    @classmethod
    def from_labels(cls, labels: Mapping[str, str] | None) -> Capability:
        labels = labels or {}
        algorithms = frozenset(
            key[len(NODE_ALGO_LABEL_PREFIX) :]
            for key, value in labels.items()
            if key.startswith(NODE_ALGO_LABEL_PREFIX) and value == "true"
        )
        others = frozenset(
            key
            for key, value in labels.items()
            if value == "true"
            and is_owned_label(key)
            and key != NODE_CCA_LABEL
            and not key.startswith(NODE_ALGO_LABEL_PREFIX)
        )
        return cls(labels.get(NODE_CCA_LABEL) == "true", algorithms, others)


class EventType(Enum):
    NORMAL = "Normal"
    WARNING = "Warning"


@dataclass(frozen=True)
class CapabilityEvent:
    """A Kubernetes Event to record on the Node after a capability change has been written."""

    type: EventType
    reason: str
    message: str


@dataclass(frozen=True)
class KeyChanges:
    """Owned keys a plan adds, changes (key -> new value) and removes in one metadata map."""

    added: Mapping[str, str] = field(default_factory=dict)
    changed: Mapping[str, str] = field(default_factory=dict)
    removed: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.changed or self.removed)

    def describe(self) -> str:
        """One short line for a log record: ``+a=true ~b=true -c``."""
        parts = [f"+{k}={v}" for k, v in sorted(self.added.items())]
        parts += [f"~{k}={v}" for k, v in sorted(self.changed.items())]
        parts += [f"-{k}" for k in self.removed]
        return " ".join(parts) or "none"


@dataclass(frozen=True)
class NodePlan:
    """What to do with one Node: the patches, in order (none: nothing to write), and why.

    With two patches the first removes owned labels and nothing else; the adapter sends it,
    re-reads the Node and plans again (the second patch's guards were computed for the Node
    as it would be after the first).
    """

    node: str
    skipped: bool
    patches: tuple[tuple[PatchOperation, ...], ...]
    label_changes: KeyChanges
    annotation_changed: bool
    event: CapabilityEvent | None

    @property
    def patch(self) -> tuple[PatchOperation, ...]:
        """All operations as one RFC 6902 patch (the patches applied in order have this effect)."""
        return tuple(op for patch in self.patches for op in patch)

    @property
    def changed(self) -> bool:
        return bool(self.patches)

    @property
    def removes_first(self) -> bool:
        """Whether the first patch only removes owned labels and more follows it."""
        return len(self.patches) > 1


def detection_annotation(report: DetectionReport) -> str:
    """The annotation value: the report's JSON, compact (docs/node-labels.md, "The detection
    report")."""
    return json.dumps(report.to_json(), separators=(",", ":"), ensure_ascii=False)


def same_report(annotation: str | None, report: DetectionReport) -> bool:
    """Whether ``annotation`` already records ``report``, ignoring ``checkedAt``.

    An unreadable annotation (not JSON, not an object) never matches, so it gets rewritten.
    """
    if annotation is None:
        return False
    try:
        recorded = json.loads(annotation)
    except ValueError:
        return False
    if not isinstance(recorded, dict):
        return False
    recorded.pop(_CHECKED_AT, None)
    wanted: dict[str, Any] = json.loads(detection_annotation(report))
    wanted.pop(_CHECKED_AT, None)
    return bool(recorded == wanted)


def plan_node(node: NodeMetadata, report: DetectionReport) -> NodePlan:
    """Decide the patch that makes ``node`` say what ``report`` says, touching owned keys only."""
    annotations = node.annotations or {}
    if KUBEVIRT_SKIP_NODE_ANNOTATION in annotations:
        return NodePlan(node.name, True, (), KeyChanges(), False, None)

    report = apply_override(report, annotations.get(NODE_HONOURS_OVERRIDE_ANNOTATION))
    desired = node_labels(report)
    changes = _label_changes(node.labels or {}, desired)
    annotation_changed = not same_report(annotations.get(NODE_DETECTION_ANNOTATION), report)

    patches: list[tuple[PatchOperation, ...]] = []
    labels = node.labels
    if changes.removed:
        removal, _ = _map_operations("labels", labels, KeyChanges(removed=changes.removed))
        patches.append(tuple(removal))
        labels = {k: v for k, v in (labels or {}).items() if k not in changes.removed}
    operations: list[PatchOperation] = []
    guard_version = False
    rest = KeyChanges(added=changes.added, changed=changes.changed)
    if rest:
        ops, creates = _map_operations("labels", labels, rest)
        operations += ops
        guard_version |= creates
    if annotation_changed:
        value = detection_annotation(report)
        update = (
            KeyChanges(changed={NODE_DETECTION_ANNOTATION: value})
            if NODE_DETECTION_ANNOTATION in annotations
            else KeyChanges(added={NODE_DETECTION_ANNOTATION: value})
        )
        ops, creates = _map_operations("annotations", node.annotations, update)
        operations += ops
        guard_version |= creates
    if guard_version and node.resource_version is not None:
        operations.insert(
            0, json_patch.guard(("metadata", "resourceVersion"), node.resource_version)
        )
    if operations:
        patches.append(tuple(operations))

    event = _capability_event(Capability.from_labels(node.labels), report) if changes else None
    return NodePlan(node.name, False, tuple(patches), changes, annotation_changed, event)


def _label_changes(current: Mapping[str, str], desired: Mapping[str, str]) -> KeyChanges:
    added = {k: v for k, v in desired.items() if k not in current}
    changed = {k: v for k, v in desired.items() if k in current and current[k] != v}
    removed = tuple(sorted(k for k in current if is_owned_label(k) and k not in desired))
    return KeyChanges(added, changed, removed)


def _map_operations(
    map_name: str, current: Mapping[str, str] | None, changes: KeyChanges
) -> tuple[list[PatchOperation], bool]:
    """Operations for one metadata map; the flag says the map is created (needs the rv guard)."""
    base = ("metadata", map_name)
    if current is None:
        # Nothing to remove or change in a map that does not exist; create it with our keys.
        if not changes.added:
            return [], False
        return [json_patch.add(base, dict(changes.added))], True
    operations: list[PatchOperation] = [json_patch.guard(base, dict(current))]
    operations += [json_patch.remove((*base, k)) for k in changes.removed]
    operations += [json_patch.replace((*base, k), v) for k, v in changes.changed.items()]
    operations += [json_patch.add((*base, k), v) for k, v in changes.added.items()]
    return operations, False


def _capability_event(before: Capability, report: DetectionReport) -> CapabilityEvent | None:
    after = Capability.from_labels(node_labels(report))
    if after == before:
        return None
    if after.capable and not before.capable:
        event = CapabilityEvent(
            EventType.NORMAL,
            "CCACapable",
            f"node can run Arm CCA Realms; measurement algorithms: {_algorithms(after)}",
        )
    elif before.capable and not after.capable:
        why = "; ".join(report.reasons) or "libvirt no longer reports cca supported='yes'"
        event = CapabilityEvent(
            EventType.WARNING,
            "CCANotCapable",
            f"node can no longer run Arm CCA Realms: {why}",
        )
    elif after.measurement_algorithms != before.measurement_algorithms:
        event = CapabilityEvent(
            EventType.NORMAL,
            "CCAAlgorithmsChanged",
            f"measurement algorithms changed from {_algorithms(before)} to {_algorithms(after)}",
        )
    else:
        event = CapabilityEvent(
            EventType.NORMAL,
            "CCAParametersChanged",
            f"the CCA parameters this node honours changed from {_others(before)} to "
            f"{_others(after)}",
        )
    if len(event.message) > EVENT_MESSAGE_LIMIT:
        event = CapabilityEvent(
            event.type, event.reason, event.message[: EVENT_MESSAGE_LIMIT - 1] + "…"
        )
    return event


def _others(capability: Capability) -> str:
    return ", ".join(sorted(capability.others)) or "none"


def _algorithms(capability: Capability) -> str:
    return ", ".join(sorted(capability.measurement_algorithms)) or "none listed"
