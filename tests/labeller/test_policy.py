"""The labeller's real patches against the shipped node-restriction admission policy.

``deploy/labeller/node-restriction.yaml`` limits the labeller's service account to its own Node
and its own keys. Its CEL is evaluated here with a CEL interpreter on the patches
:func:`plan_node` actually produces (applied as the API server applies them): every one must be
admitted, or the labeller would be locked out of its own job. Edits it must never make must be
refused. (The install tests check the policy's own cases; this checks the two parts together.)
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, cast

import celpy
import jsonpatch
import pytest
import yaml
from celpy.evaluation import Context
from hypothesis import given, settings
from hypothesis import strategies as st

from kubevirt_cca.constants import (
    NODE_ALGO_LABEL_PREFIX,
    NODE_CCA_LABEL,
    NODE_HONOURS_OVERRIDE_ANNOTATION,
)
from kubevirt_cca.core.node.detection_report import DetectionReport
from kubevirt_cca.core.node.labelling import NodeMetadata, detection_annotation, plan_node
from tests.conftest import ROOT

POLICY_FILE = ROOT / "deploy" / "labeller" / "node-restriction.yaml"
LABELLER = "system:serviceaccount:kubevirt-cca:kubevirt-cca-labeller"
NODE = "arm-1"
ENV = celpy.Environment()


def _policy(path: Path) -> dict[str, Any]:
    if not path.exists():
        pytest.skip(f"{path} is not there (the install manifests are generated elsewhere)")
    for document in yaml.safe_load_all(path.read_text()):
        if document and document.get("kind") == "ValidatingAdmissionPolicy":
            policy: dict[str, Any] = document
            return policy
    raise AssertionError(f"{path} holds no ValidatingAdmissionPolicy")


def _run(expression: str, activation: dict[str, Any]) -> Any:
    # json_to_cel gives a CEL map for a dict, which is the activation (its type says any value).
    context = cast("Context", celpy.json_to_cel(activation))
    return ENV.program(ENV.compile(expression)).evaluate(context)


def refusals(
    old: dict[str, Any], new: dict[str, Any], *, user: str = LABELLER, token_node: str | None = NODE
) -> list[str]:
    """The failing validations, named by their message (or message expression); [] = admitted."""
    spec = _policy(POLICY_FILE)["spec"]
    extra = {} if token_node is None else {"authentication.kubernetes.io/node-name": [token_node]}
    base: dict[str, Any] = {
        "object": new,
        "oldObject": old,
        "request": {"userInfo": {"username": user, "extra": extra}},
    }
    if not all(_run(c["expression"], base) for c in spec["matchConditions"]):
        return []
    variables: dict[str, Any] = {}
    for variable in spec.get("variables", []):  # each may use the ones before it
        variables[variable["name"]] = _run(variable["expression"], {**base, "variables": variables})
    activation = {**base, "variables": variables}
    return [
        v.get("message") or v["messageExpression"]
        for v in spec["validations"]
        if not _run(v["expression"], activation)
    ]


def node(labels: dict[str, str], annotations: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": NODE,
            "resourceVersion": "5",
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {"podCIDR": "10.0.0.0/24"},
    }


def capable(*algorithms: str) -> DetectionReport:
    return DetectionReport(True, algorithms, (), {"libvirt": {"ccaSupported": "yes"}}, None)


def not_capable(reason: str = "libvirt reports cca supported='no'") -> DetectionReport:
    return DetectionReport(False, (), (reason,), {"libvirt": {"ccaSupported": "no"}}, None)


def patched(old: dict[str, Any], report: DetectionReport) -> dict[str, Any]:
    plan = plan_node(NodeMetadata.from_object(old), report)
    new: dict[str, Any] = jsonpatch.apply_patch(copy.deepcopy(old), list(plan.patch))
    new["metadata"]["resourceVersion"] = "6"
    return new


FOREIGN = {"kubernetes.io/arch": "arm64", "cca.kubevirt.io/enabled": "true"}


@pytest.mark.parametrize(
    ("labels", "report"),
    [
        (dict(FOREIGN), capable("sha256", "sha512")),
        (
            {**FOREIGN, NODE_CCA_LABEL: "true", NODE_ALGO_LABEL_PREFIX + "sha256": "true"},
            capable("sha512"),
        ),
        ({**FOREIGN, NODE_CCA_LABEL: "true"}, not_capable()),
        (dict(FOREIGN), not_capable()),
    ],
)
def test_the_labellers_own_patches_are_admitted(
    labels: dict[str, str], report: DetectionReport
) -> None:
    old = node(labels, {"team": "infra", "cca.kubevirt.io/detection": "{}"})

    assert refusals(old, patched(old, report)) == []


@settings(max_examples=60, deadline=None)
@given(
    owned=st.dictionaries(
        st.sampled_from(
            [NODE_CCA_LABEL, NODE_ALGO_LABEL_PREFIX + "sha256", NODE_ALGO_LABEL_PREFIX + "md5"]
        ),
        st.sampled_from(["true", "false"]),
    ),
    algorithms=st.lists(st.sampled_from(["sha256", "sha512"]), unique=True),
    is_capable=st.booleans(),
    recorded=st.sampled_from([None, "{}", "garbage"]),
)
def test_no_patch_the_labeller_makes_is_refused(
    owned: dict[str, str], algorithms: list[str], is_capable: bool, recorded: str | None
) -> None:
    annotations = (
        {"team": "infra"}
        if recorded is None
        else {"team": "infra", "cca.kubevirt.io/detection": recorded}
    )
    old = node({**FOREIGN, **owned}, annotations)
    report = capable(*algorithms) if is_capable else not_capable()

    assert refusals(old, patched(old, report)) == []


def test_a_write_to_another_node_is_refused() -> None:
    old = node(dict(FOREIGN), {})
    new = patched(old, capable())

    refused = refusals(old, new, token_node="arm-2")
    assert len(refused) == 1
    assert "may only change its" in refused[0]
    assert refusals(old, new, token_node=None)


@pytest.mark.parametrize(
    ("change", "names"),
    [
        (
            lambda n: n["metadata"]["labels"].update({"kubernetes.io/arch": "amd64"}),
            "may only change the labels",
        ),
        (
            lambda n: n["metadata"]["labels"].pop("cca.kubevirt.io/enabled"),
            "may only change the labels",
        ),
        (
            lambda n: n["metadata"]["labels"].update({"node-role.kubernetes.io/control-plane": ""}),
            "may only change the labels",
        ),
        (
            lambda n: n["metadata"]["annotations"].update({"team": "other"}),
            "may only change the annotation",
        ),
        (lambda n: n["spec"].update({"unschedulable": True}), "may not change a Node's spec"),
    ],
)
def test_edits_the_labeller_never_makes_are_refused(change: Any, names: str) -> None:
    old = node(dict(FOREIGN), {"team": "infra"})
    new = copy.deepcopy(old)
    change(new)

    refused = refusals(old, new)
    assert len(refused) == 1
    assert names in refused[0]


def test_an_up_to_date_node_needs_no_patch_at_all() -> None:
    report = capable("sha256")
    old = node(
        {**FOREIGN, NODE_CCA_LABEL: "true", NODE_ALGO_LABEL_PREFIX + "sha256": "true"},
        {"cca.kubevirt.io/detection": detection_annotation(report)},
    )

    assert plan_node(NodeMetadata.from_object(old), report).patch == ()


def test_the_admins_override_is_not_the_labellers_to_write() -> None:
    """The labeller reads cca.kubevirt.io/libvirt-honours; its policy refuses any write to it."""
    old = node(dict(FOREIGN), {"team": "infra"})
    for value in ("personalizationValue", "measurementLog"):
        new = copy.deepcopy(old)
        new["metadata"]["annotations"][NODE_HONOURS_OVERRIDE_ANNOTATION] = value
        [refused] = refusals(old, new)
        assert "may only change the annotation" in refused
    granted = node(dict(FOREIGN), {NODE_HONOURS_OVERRIDE_ANNOTATION: "measurementLog"})
    removed = copy.deepcopy(granted)
    del removed["metadata"]["annotations"][NODE_HONOURS_OVERRIDE_ANNOTATION]
    assert len(refusals(granted, removed)) == 1


def test_the_patch_an_override_calls_for_is_admitted() -> None:
    old = node(dict(FOREIGN), {NODE_HONOURS_OVERRIDE_ANNOTATION: "personalizationValue"})
    new = patched(old, capable("sha512"))
    assert new["metadata"]["labels"]["cca.kubevirt.io/personalization-value"] == "true"
    assert refusals(old, new) == []
