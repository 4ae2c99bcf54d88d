"""The admission policy sketched in docs/node-labels.md, run with a CEL interpreter.

The labeller's own patches must pass it; a write to another node, to a foreign key or to the
spec must not. The policy is read from the page itself, so the page cannot drift from what is
tested.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import celpy
import jsonpatch
import pytest
import yaml

from kubevirt_cca.constants import NODE_ALGO_LABEL_PREFIX, NODE_CCA_LABEL
from kubevirt_cca.core.capabilities import DetectionReport
from kubevirt_cca.core.labelling import NodeMetadata, detection_annotation, plan_node
from tests.conftest import ROOT

LABELLER = "system:serviceaccount:kubevirt-cca:kubevirt-cca-labeller"
NODE = "arm-1"


def _policy() -> dict[str, Any]:
    text = (ROOT / "docs" / "node-labels.md").read_text()
    for block in re.findall(r"```yaml\n(.*?)```", text, re.S):
        for document in yaml.safe_load_all(block):
            if document.get("kind") == "ValidatingAdmissionPolicy":
                policy: dict[str, Any] = document
                return policy
    raise AssertionError("docs/node-labels.md has no ValidatingAdmissionPolicy block")


POLICY = _policy()
ENV = celpy.Environment()


def _run(expression: str, activation: dict[str, Any]) -> Any:
    program = ENV.program(ENV.compile(expression))
    return program.evaluate(celpy.json_to_cel(activation))


def refusals(old: dict[str, Any], new: dict[str, Any], *, user: str = LABELLER,
             token_node: str | None = NODE) -> list[str]:
    """The messages of every validation ``new`` fails (empty: admitted)."""
    extra = {} if token_node is None else {"authentication.kubernetes.io/node-name": [token_node]}
    request = {"userInfo": {"username": user, "extra": extra}}
    base = {"object": new, "oldObject": old, "request": request}
    spec = POLICY["spec"]
    if not all(_run(c["expression"], base) for c in spec["matchConditions"]):
        return []  # the policy does not apply to this user
    variables = {v["name"]: _run(v["expression"], base) for v in spec["variables"]}
    activation = {**base, "variables": variables}
    return [v["message"] for v in spec["validations"] if not _run(v["expression"], activation)]


def node(labels: dict[str, str], annotations: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": NODE, "labels": labels, "annotations": annotations},
            "spec": {"podCIDR": "10.0.0.0/24"}}


def capable(*algorithms: str) -> DetectionReport:
    return DetectionReport(True, algorithms, (), {"libvirt": {"ccaSupported": "yes"}}, None)


NOT_CAPABLE = DetectionReport(False, (), ("libvirt reports cca supported='no'",), {}, None)
FOREIGN = {"kubernetes.io/arch": "arm64", "cca.kubevirt.io/enabled": "true"}


@pytest.mark.parametrize(("labels", "report"), [
    (dict(FOREIGN), capable("sha256", "sha512")),
    ({**FOREIGN, NODE_CCA_LABEL: "true", NODE_ALGO_LABEL_PREFIX + "sha256": "true"},
     capable("sha512")),
    ({**FOREIGN, NODE_CCA_LABEL: "true"}, NOT_CAPABLE),
    (dict(FOREIGN), NOT_CAPABLE),
])
def test_the_labellers_own_patches_are_admitted(labels: dict[str, str],
                                                report: DetectionReport) -> None:
    old = node(labels, {"team": "infra", "cca.kubevirt.io/detection": "{}"})
    plan = plan_node(NodeMetadata.from_object(old), report)
    new = jsonpatch.apply_patch(copy.deepcopy(old), list(plan.patch))

    assert plan.patch
    assert refusals(old, new) == []


def test_a_write_to_another_node_is_refused() -> None:
    old = node(dict(FOREIGN), {})
    new = jsonpatch.apply_patch(copy.deepcopy(old), list(
        plan_node(NodeMetadata.from_object(old), capable()).patch))

    assert refusals(old, new, token_node="arm-2") == [
        "the node labeller may only change the node it runs on"]
    assert refusals(old, new, token_node=None) == [
        "the node labeller may only change the node it runs on"]


@pytest.mark.parametrize(("change", "message"), [
    (lambda n: n["metadata"]["labels"].update({"kubernetes.io/arch": "amd64"}),
     "the node labeller may only change kubevirt.io/cca and cca.kubevirt.io/measurement-algo-* "
     "labels"),
    (lambda n: n["metadata"]["labels"].pop("cca.kubevirt.io/enabled"),
     "the node labeller may only change kubevirt.io/cca and cca.kubevirt.io/measurement-algo-* "
     "labels"),
    (lambda n: n["metadata"]["labels"].update({"node-role.kubernetes.io/control-plane": ""}),
     "the node labeller may only change kubevirt.io/cca and cca.kubevirt.io/measurement-algo-* "
     "labels"),
    (lambda n: n["metadata"]["annotations"].update({"team": "other"}),
     "the node labeller may only change the cca.kubevirt.io/detection annotation"),
    (lambda n: n["spec"].update({"unschedulable": True}),
     "the node labeller may not change a node's spec"),
])
def test_edits_the_labeller_never_makes_are_refused(change: Any, message: str) -> None:
    old = node(dict(FOREIGN), {"team": "infra"})
    new = copy.deepcopy(old)
    change(new)

    assert refusals(old, new) == [message]


def test_other_users_are_not_affected() -> None:
    old = node(dict(FOREIGN), {})
    new = copy.deepcopy(old)
    new["metadata"]["labels"]["kubernetes.io/arch"] = "amd64"

    assert refusals(old, new, user="system:node:arm-1") == []


def test_an_unchanged_annotation_value_is_recognised() -> None:
    report = capable("sha256")
    annotations = {"cca.kubevirt.io/detection": detection_annotation(report)}
    old = node({**FOREIGN, NODE_CCA_LABEL: "true", NODE_ALGO_LABEL_PREFIX + "sha256": "true"},
               annotations)

    assert plan_node(NodeMetadata.from_object(old), report).patch == ()
    assert refusals(old, copy.deepcopy(old)) == []
