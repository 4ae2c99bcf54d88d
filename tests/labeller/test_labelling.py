"""The pure plan: which keys the labeller writes, and the guarded JSON patch that writes them."""

from __future__ import annotations

import copy
import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonpatch
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubevirt_cca.constants import (
    KUBEVIRT_SKIP_NODE_ANNOTATION,
    NODE_ALGO_LABEL_PREFIX,
    NODE_CCA_LABEL,
    NODE_DETECTION_ANNOTATION,
)
from kubevirt_cca.core.node.detection_report import DetectionReport
from kubevirt_cca.core.node.labelling import (
    EVENT_MESSAGE_LIMIT,
    EventType,
    NodeMetadata,
    NodePlan,
    detection_annotation,
    plan_node,
    same_report,
)
from kubevirt_cca.core.node.labels import is_owned_label, node_labels
from kubevirt_cca.core.wire.json_patch import escape, pointer, segments
from tests.labeller.conftest import (
    CAPABLE_LABELS,
    FOREIGN_ANNOTATIONS,
    FOREIGN_LABELS,
    NODE,
    detector_for,
    domcaps,
    make_host,
)

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def capable(*algorithms: str) -> DetectionReport:
    return DetectionReport(True, algorithms, (), {"libvirt": {"ccaSupported": "yes"}}, NOW)


def not_capable(*reasons: str) -> DetectionReport:
    return DetectionReport(
        False,
        (),
        reasons or ("libvirt reports cca supported='no'",),
        {"libvirt": {"ccaSupported": "no"}},
        NOW,
    )


def node_object(
    labels: dict[str, str] | None, annotations: dict[str, str] | None, resource_version: str = "7"
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": NODE, "uid": "u-1", "resourceVersion": resource_version}
    if labels is not None:
        metadata["labels"] = labels
    if annotations is not None:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Node", "metadata": metadata}


def apply(node: dict[str, Any], plan: NodePlan) -> dict[str, Any]:
    """Apply the plan's patch the way the API server does (RFC 6902, all or nothing)."""
    patched: dict[str, Any] = jsonpatch.apply_patch(copy.deepcopy(node), list(plan.patch))
    return patched


def owned(labels: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in labels.items() if is_owned_label(k)}


# --- Desired state from real libvirt answers ---------------------------------------------------


@pytest.mark.shared
@pytest.mark.parametrize("fixture", sorted(CAPABLE_LABELS))
def test_each_fixture_gives_the_labels_its_libvirt_answer_calls_for(
    fixture: str, tmp_path: Path
) -> None:
    report = detector_for(domcaps(fixture), make_host(tmp_path))()
    node = node_object(dict(FOREIGN_LABELS), dict(FOREIGN_ANNOTATIONS))

    patched = apply(node, plan_node(NodeMetadata.from_object(node), report))

    labels = patched["metadata"]["labels"]
    assert owned(labels) == CAPABLE_LABELS[fixture]
    assert {k: v for k, v in labels.items() if not is_owned_label(k)} == FOREIGN_LABELS
    annotation = json.loads(patched["metadata"]["annotations"][NODE_DETECTION_ANNOTATION])
    assert annotation["capable"] is bool(CAPABLE_LABELS[fixture])
    assert annotation == report.to_json()
    for key, value in FOREIGN_ANNOTATIONS.items():
        assert patched["metadata"]["annotations"][key] == value


@pytest.mark.shared
def test_a_not_capable_node_is_told_why_in_plain_words(tmp_path: Path) -> None:
    root = make_host(tmp_path, kvm=False, rmi="0", abi_line=False)
    report = detector_for(domcaps("aarch64-no-cca.xml"), root)()
    node = node_object({}, {})

    patched = apply(node, plan_node(NodeMetadata.from_object(node), report))

    annotation = json.loads(patched["metadata"]["annotations"][NODE_DETECTION_ANNOTATION])
    assert annotation["capable"] is False
    assert any("no <cca> feature" in reason for reason in annotation["reasons"])
    assert any("no /dev/kvm" in reason for reason in annotation["reasons"])
    assert any("RMI capability" in reason for reason in annotation["reasons"])
    assert any("RMI ABI version" in reason for reason in annotation["reasons"])
    assert annotation["evidence"]["host"]["devKvm"] is False
    assert annotation["evidence"]["host"]["kvmRmiParameters"]["kvm_cap_arm_rmi"] == "0"


# --- The patch: owned keys only, guarded -------------------------------------------------------


def test_labels_added_on_a_fresh_node_with_a_test_guard_on_the_maps_as_read() -> None:
    node = NodeMetadata(NODE, dict(FOREIGN_LABELS), dict(FOREIGN_ANNOTATIONS), "7")

    plan = plan_node(node, capable("sha256"))

    assert plan.patch[0] == {"op": "test", "path": "/metadata/labels", "value": FOREIGN_LABELS}
    assert {"op": "add", "path": "/metadata/labels/kubevirt.io~1cca", "value": "true"} in plan.patch
    assert {
        "op": "add",
        "path": "/metadata/labels/cca.kubevirt.io~1measurement-algo-sha256",
        "value": "true",
    } in plan.patch
    assert {
        "op": "test",
        "path": "/metadata/annotations",
        "value": FOREIGN_ANNOTATIONS,
    } in plan.patch
    assert plan.label_changes.added == {
        NODE_CCA_LABEL: "true",
        NODE_ALGO_LABEL_PREFIX + "sha256": "true",
    }
    assert plan.annotation_changed


def test_every_non_test_operation_names_an_owned_key() -> None:
    labels = {**FOREIGN_LABELS, NODE_CCA_LABEL: "true", NODE_ALGO_LABEL_PREFIX + "sha512": "true"}
    node = NodeMetadata(NODE, labels, {**FOREIGN_ANNOTATIONS, NODE_DETECTION_ANNOTATION: "{}"})

    plan = plan_node(node, capable("sha256"))

    writes = [op for op in plan.patch if op["op"] != "test"]
    assert writes
    for op in writes:
        prefix, _, key = op["path"].rpartition("/")
        key = key.replace("~1", "/").replace("~0", "~")
        assert (prefix == "/metadata/labels" and is_owned_label(key)) or (
            prefix == "/metadata/annotations" and key == NODE_DETECTION_ANNOTATION
        )


def test_algorithms_change_replaces_and_removes_only_algorithm_labels() -> None:
    before = {
        **FOREIGN_LABELS,
        NODE_CCA_LABEL: "true",
        NODE_ALGO_LABEL_PREFIX + "sha256": "true",
        NODE_ALGO_LABEL_PREFIX + "sha512": "true",
    }
    node = node_object(
        dict(before), {NODE_DETECTION_ANNOTATION: detection_annotation(capable("sha256", "sha512"))}
    )

    plan = plan_node(NodeMetadata.from_object(node), capable("sha512"))
    patched = apply(node, plan)

    assert patched["metadata"]["labels"] == {
        **FOREIGN_LABELS,
        NODE_CCA_LABEL: "true",
        NODE_ALGO_LABEL_PREFIX + "sha512": "true",
    }
    assert plan.label_changes.removed == (NODE_ALGO_LABEL_PREFIX + "sha256",)
    assert plan.event is not None
    assert plan.event.reason == "CCAAlgorithmsChanged"
    assert plan.event.message == "measurement algorithms changed from sha256, sha512 to sha512"


def test_a_parameter_gained_is_a_label_and_an_event() -> None:
    before = {**FOREIGN_LABELS, NODE_CCA_LABEL: "true", NODE_ALGO_LABEL_PREFIX + "sha256": "true"}
    node = node_object(dict(before), {})
    report = DetectionReport(
        True, ("sha256",), (), {"libvirt": {"ccaSupported": "yes"}}, NOW, personalization_value=True
    )
    plan = plan_node(NodeMetadata.from_object(node), report)
    patched = apply(node, plan)
    assert patched["metadata"]["labels"] == {
        **before,
        "cca.kubevirt.io/personalization-value": "true",
    }
    assert plan.event is not None
    assert (plan.event.reason, plan.event.message) == (
        "CCAParametersChanged",
        "the CCA parameters this node honours changed from none to "
        "cca.kubevirt.io/personalization-value",
    )


def test_capability_lost_removes_every_owned_label_and_warns() -> None:
    before = {**FOREIGN_LABELS, NODE_CCA_LABEL: "true", NODE_ALGO_LABEL_PREFIX + "sha256": "true"}
    node = node_object(dict(before), {})

    plan = plan_node(
        NodeMetadata.from_object(node), not_capable("libvirt reports cca supported='no'")
    )
    patched = apply(node, plan)

    assert patched["metadata"]["labels"] == FOREIGN_LABELS
    assert plan.event is not None
    assert plan.event.type is EventType.WARNING
    assert plan.event.reason == "CCANotCapable"
    assert "cca supported='no'" in plan.event.message


def test_stale_owned_label_values_are_corrected() -> None:
    node = node_object({NODE_CCA_LABEL: "false", NODE_ALGO_LABEL_PREFIX + "md5": "true"}, {})

    plan = plan_node(NodeMetadata.from_object(node), capable())
    patched = apply(node, plan)

    assert patched["metadata"]["labels"] == {NODE_CCA_LABEL: "true"}
    assert {
        "op": "replace",
        "path": "/metadata/labels/kubevirt.io~1cca",
        "value": "true",
    } in plan.patch
    assert plan.event is not None and plan.event.reason == "CCACapable"


def test_absent_maps_are_created_under_a_resource_version_guard() -> None:
    node = node_object(None, None, resource_version="42")

    plan = plan_node(NodeMetadata.from_object(node), capable("sha256"))
    patched = apply(node, plan)

    assert plan.patch[0] == {"op": "test", "path": "/metadata/resourceVersion", "value": "42"}
    assert patched["metadata"]["labels"] == {
        NODE_CCA_LABEL: "true",
        NODE_ALGO_LABEL_PREFIX + "sha256": "true",
    }
    assert NODE_DETECTION_ANNOTATION in patched["metadata"]["annotations"]


def test_absent_labels_map_and_nothing_to_label_writes_only_the_annotation() -> None:
    node = node_object(None, {"a": "b"})

    plan = plan_node(NodeMetadata.from_object(node), not_capable())

    assert all(not op["path"].startswith("/metadata/labels") for op in plan.patch)
    assert "labels" not in apply(node, plan)["metadata"]


def test_a_concurrent_label_change_makes_the_patch_fail_its_test() -> None:
    node = node_object(dict(FOREIGN_LABELS), {})
    plan = plan_node(NodeMetadata.from_object(node), capable())
    node["metadata"]["labels"]["team"] = "blue"  # someone else wrote between read and patch

    with pytest.raises(jsonpatch.JsonPatchTestFailed):
        apply(node, plan)


def test_a_concurrent_map_creation_makes_the_patch_fail_its_resource_version_test() -> None:
    node = node_object(None, None, resource_version="42")
    plan = plan_node(NodeMetadata.from_object(node), capable())
    node["metadata"]["labels"] = {"team": "blue"}
    node["metadata"]["resourceVersion"] = "43"

    with pytest.raises(jsonpatch.JsonPatchTestFailed):
        apply(node, plan)


def test_label_keys_are_escaped_as_json_pointers() -> None:
    assert escape("kubevirt.io/cca") == "kubevirt.io~1cca"
    assert escape("a~b/c") == "a~0b~1c"
    # "~1" must not come back as "/" when it was a literal "~" followed by "1".
    assert escape("~1") == "~01"
    assert pointer(["metadata", "labels", "a~1/b"]) == "/metadata/labels/a~01~1b"
    assert segments("/metadata/labels/a~01~1b") == ["metadata", "labels", "a~1/b"]


# --- Skip, and nothing changed -----------------------------------------------------------------


@pytest.mark.parametrize("value", ["true", "", "false"])
def test_skip_node_annotation_with_any_value_leaves_the_node_alone(value: str) -> None:
    labels = {NODE_CCA_LABEL: "true", NODE_ALGO_LABEL_PREFIX + "sha256": "true"}
    node = NodeMetadata(NODE, labels, {KUBEVIRT_SKIP_NODE_ANNOTATION: value})

    plan = plan_node(node, not_capable())

    assert plan.skipped
    assert plan.patch == ()
    assert plan.event is None


def test_an_up_to_date_node_gets_an_empty_patch() -> None:
    report = capable("sha256")
    node = node_object(
        {NODE_CCA_LABEL: "true", NODE_ALGO_LABEL_PREFIX + "sha256": "true"},
        {NODE_DETECTION_ANNOTATION: detection_annotation(report)},
    )

    plan = plan_node(NodeMetadata.from_object(node), report)

    assert plan.patch == ()
    assert not plan.changed
    assert plan.event is None


def test_a_new_checked_at_alone_is_not_a_change() -> None:
    report = capable("sha256")
    later = dataclasses.replace(report, checked_at=NOW + timedelta(hours=3))
    node = node_object(
        {NODE_CCA_LABEL: "true", NODE_ALGO_LABEL_PREFIX + "sha256": "true"},
        {NODE_DETECTION_ANNOTATION: detection_annotation(report)},
    )

    assert same_report(detection_annotation(report), later)
    assert plan_node(NodeMetadata.from_object(node), later).patch == ()


def test_new_evidence_rewrites_the_annotation_without_touching_labels() -> None:
    report = not_capable("no /dev/kvm: KVM is not available on this host")
    node = node_object({}, {NODE_DETECTION_ANNOTATION: detection_annotation(not_capable())})

    plan = plan_node(NodeMetadata.from_object(node), report)
    patched = apply(node, plan)

    assert plan.annotation_changed
    assert not plan.label_changes
    assert plan.event is None  # still not capable: not a change of capability
    assert json.loads(patched["metadata"]["annotations"][NODE_DETECTION_ANNOTATION]) == (
        report.to_json()
    )


@pytest.mark.parametrize("recorded", ["not json", "[1, 2]", "null", '"capable"'])
def test_an_unreadable_annotation_is_rewritten(recorded: str) -> None:
    node = node_object({}, {NODE_DETECTION_ANNOTATION: recorded})

    plan = plan_node(NodeMetadata.from_object(node), not_capable())

    assert {
        "op": "replace",
        "path": "/metadata/annotations/cca.kubevirt.io~1detection",
        "value": detection_annotation(not_capable()),
    } in plan.patch


def test_event_messages_are_kept_short() -> None:
    node = NodeMetadata(NODE, {NODE_CCA_LABEL: "true"}, {})

    plan = plan_node(node, not_capable(*["x" * 300] * 10))

    assert plan.event is not None
    assert len(plan.event.message) == EVENT_MESSAGE_LIMIT
    assert plan.event.message.endswith("…")


# --- Properties over open input ----------------------------------------------------------------

_segment = st.from_regex(r"\A[a-z0-9]([a-z0-9.-]{0,10}[a-z0-9])?\Z")
_foreign_key = st.one_of(
    _segment,
    st.builds(lambda p, n: f"{p}/{n}", _segment, _segment),
    st.sampled_from(
        [
            "cca.kubevirt.io/enabled",
            "kubevirt.io/schedulable",
            "cca.kubevirt.io/measurement-algo",
            "kubevirt.io/cca-x",
            "a~b/c",
        ]
    ),
).filter(lambda key: not is_owned_label(key))
_value = st.text(st.characters(codec="ascii", categories=["L", "N"]), max_size=8)
_algorithm = st.sampled_from(["sha256", "sha512", "sha384", "md5"])
_owned_labels = st.dictionaries(
    st.one_of(st.just(NODE_CCA_LABEL), _algorithm.map(lambda a: NODE_ALGO_LABEL_PREFIX + a)),
    st.sampled_from(["true", "false", ""]),
)
_reports = st.one_of(
    st.lists(_algorithm, unique=True, max_size=3).map(lambda a: capable(*a)),
    st.lists(st.text(max_size=20), min_size=1, max_size=3).map(lambda r: not_capable(*r)),
)
_annotation = st.one_of(st.none(), st.just("garbage"), _reports.map(detection_annotation))


@settings(max_examples=300, deadline=None)
@given(
    foreign=st.dictionaries(_foreign_key, _value, max_size=6),
    owned_labels=_owned_labels,
    foreign_annotations=st.dictionaries(_foreign_key, _value, max_size=4),
    recorded=_annotation,
    labels_absent=st.booleans(),
    report=_reports,
)
def test_the_patch_converges_and_never_touches_a_foreign_key(
    foreign: dict[str, str],
    owned_labels: dict[str, str],
    foreign_annotations: dict[str, str],
    recorded: str | None,
    labels_absent: bool,
    report: DetectionReport,
) -> None:
    labels = None if labels_absent else {**foreign, **owned_labels}
    annotations = dict(foreign_annotations)
    if recorded is not None:
        annotations[NODE_DETECTION_ANNOTATION] = recorded
    node = node_object(labels, annotations)

    plan = plan_node(NodeMetadata.from_object(node), report)
    patched = apply(node, plan)

    new_labels = patched["metadata"].get("labels", {})
    assert owned(new_labels) == node_labels(report)
    assert {k: v for k, v in new_labels.items() if not is_owned_label(k)} == (
        {} if labels is None else foreign
    )
    new_annotations = patched["metadata"]["annotations"]
    assert {k: v for k, v in new_annotations.items() if k != NODE_DETECTION_ANNOTATION} == (
        foreign_annotations
    )
    assert same_report(new_annotations[NODE_DETECTION_ANNOTATION], report)
    # Converged: planning again against the result writes nothing.
    assert plan_node(NodeMetadata.from_object(patched), report).patch == ()
    # An event exactly when the capability the labels express changed.
    assert (plan.event is not None) == (_capability(labels or {}) != _capability(new_labels))


def _capability(labels: dict[str, str]) -> tuple[bool, frozenset[str]]:
    return (
        labels.get(NODE_CCA_LABEL) == "true",
        frozenset(
            k for k, v in labels.items() if k.startswith(NODE_ALGO_LABEL_PREFIX) and v == "true"
        ),
    )


def test_removing_labels_is_a_patch_of_its_own_sent_first() -> None:
    labels = {
        **FOREIGN_LABELS,
        "kubevirt.io/cca": "true",
        "cca.kubevirt.io/measurement-algo-sha256": "true",
    }
    node = node_object(labels, dict(FOREIGN_ANNOTATIONS))
    plan = plan_node(NodeMetadata.from_object(node), not_capable("libvirt reports no"))
    assert plan.removes_first
    removal, rest = plan.patches
    assert removal == (
        {"op": "test", "path": "/metadata/labels", "value": labels},
        {"op": "remove", "path": "/metadata/labels/cca.kubevirt.io~1measurement-algo-sha256"},
        {"op": "remove", "path": "/metadata/labels/kubevirt.io~1cca"},
    )
    assert all(not op["path"].startswith("/metadata/labels") for op in rest)
    # Sent alone, the removal leaves the Node without a capable label whatever follows.
    removed: dict[str, Any] = jsonpatch.apply_patch(copy.deepcopy(node), list(removal))
    assert not any(is_owned_label(k) for k in removed["metadata"]["labels"])


def test_an_algorithm_swap_removes_first_and_adds_with_the_report() -> None:
    labels = {
        **FOREIGN_LABELS,
        "kubevirt.io/cca": "true",
        "cca.kubevirt.io/measurement-algo-sha256": "true",
    }
    node = node_object(labels, dict(FOREIGN_ANNOTATIONS))
    plan = plan_node(NodeMetadata.from_object(node), capable("sha512"))
    removal, rest = plan.patches
    assert [op["op"] for op in removal] == ["test", "remove"]
    after_removal = {
        k: v for k, v in labels.items() if k != "cca.kubevirt.io/measurement-algo-sha256"
    }
    # The second patch's guard is the map as the first one leaves it.
    assert rest[0] == {"op": "test", "path": "/metadata/labels", "value": after_removal}
    assert {
        "op": "add",
        "path": "/metadata/labels/cca.kubevirt.io~1measurement-algo-sha512",
        "value": "true",
    } in rest
    assert any(op["path"].startswith("/metadata/annotations") for op in rest)
