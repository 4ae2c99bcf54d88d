"""The labeller's ValidatingAdmissionPolicy, its CEL evaluated on allowed and refused patches."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubevirt_cca.constants import (
    NODE_ALGO_LABEL_PREFIX,
    NODE_CCA_LABEL,
    NODE_DETECTION_ANNOTATION,
)
from kubevirt_cca.core.install import InstallOptions, install_objects
from kubevirt_cca.core.install.names import NODE_RESTRICTION_POLICY
from kubevirt_cca.core.node.labels import is_owned_label
from tests.install.expected import LABELLER_LABELS_REFUSAL
from tests.install.support import find
from tests.install.vap import Decision, admit

LABELLER = "system:serviceaccount:kubevirt-cca:kubevirt-cca-labeller"
NODE_EXTRA = "authentication.kubernetes.io/node-name"


@pytest.fixture(scope="module")
def policy() -> dict[str, Any]:
    objects = install_objects(InstallOptions())
    binding = find(objects, "ValidatingAdmissionPolicyBinding", NODE_RESTRICTION_POLICY)
    assert binding["spec"] == {"policyName": NODE_RESTRICTION_POLICY, "validationActions": ["Deny"]}
    return find(objects, "ValidatingAdmissionPolicy", NODE_RESTRICTION_POLICY)


def node(
    name: str = "arm-1",
    *,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/arch": "arm64",
                **(labels or {}),
            },
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", **(annotations or {})},
        },
        "spec": {"podCIDR": "10.244.1.0/24"},
        "status": {"nodeInfo": {"architecture": "arm64"}},
    }


def request(
    user: str = LABELLER, *, on_node: str | None = "arm-1", operation: str = "UPDATE"
) -> dict[str, Any]:
    info: dict[str, Any] = {"username": user, "groups": ["system:serviceaccounts"]}
    if on_node is not None:
        info["extra"] = {
            NODE_EXTRA: [on_node],
            "authentication.kubernetes.io/pod-name": ["kubevirt-cca-labeller-x"],
        }
    return {
        "operation": operation,
        "userInfo": info,
        "resource": {"group": "", "version": "v1", "resource": "nodes"},
    }


def labelled(before: dict[str, Any]) -> dict[str, Any]:
    after = copy.deepcopy(before)
    after["metadata"]["labels"][NODE_CCA_LABEL] = "true"
    after["metadata"]["labels"][f"{NODE_ALGO_LABEL_PREFIX}sha256"] = "true"
    after["metadata"]["annotations"][NODE_DETECTION_ANNOTATION] = json.dumps({"capable": True})
    return after


def decide(
    policy: dict[str, Any], before: dict[str, Any], after: dict[str, Any], **kwargs: Any
) -> Decision:
    return admit(policy, request=request(**kwargs), obj=after, old=before)


def test_the_labeller_may_set_its_keys_on_its_own_node(policy: dict[str, Any]) -> None:
    before = node()
    decision = decide(policy, before, labelled(before))
    assert decision == Decision(applies=True, allowed=True)


def test_the_labeller_may_remove_its_keys(policy: dict[str, Any]) -> None:
    before = labelled(node())
    assert decide(policy, before, node()).allowed


def test_the_labeller_may_change_the_detection_report(policy: dict[str, Any]) -> None:
    before = labelled(node())
    after = copy.deepcopy(before)
    after["metadata"]["annotations"][NODE_DETECTION_ANNOTATION] = '{"capable": false}'
    assert decide(policy, before, after).allowed


def test_a_node_without_labels_or_annotations(policy: dict[str, Any]) -> None:
    before = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "arm-1"}}
    after = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "arm-1", "labels": {NODE_CCA_LABEL: "true"}},
    }
    assert decide(policy, before, after).allowed


def test_the_labeller_may_not_patch_another_node(policy: dict[str, Any]) -> None:
    before = node("arm-2")
    decision = decide(policy, before, labelled(before), on_node="arm-1")
    assert not decision.allowed
    assert decision.messages == (
        "kubevirt-cca-labeller on node arm-1 may only change its own Node, not arm-2",
    )


@pytest.mark.parametrize(
    "key",
    [
        "node-role.kubernetes.io/control-plane",
        "kubevirt.io/schedulable",  # KubeVirt's, not ours
        "kubevirt.io/cca-extra",  # looks like ours, is not
        "cca.kubevirt.io/enabled",  # the VM owner's label, never a node's
        "cca.kubevirt.io/measurement-alg-sha256",
        # issue 13: only the algorithm labels the labeller can write, not any under the prefix
        "cca.kubevirt.io/measurement-algo-md5",
        "cca.kubevirt.io/measurement-algo-",
        "cca.kubevirt.io/measurement-algo-sha256-extra",
    ],
)
def test_a_foreign_label_is_refused(policy: dict[str, Any], key: str) -> None:
    before = node()
    after = labelled(before)
    after["metadata"]["labels"][key] = "true"
    decision = decide(policy, before, after)
    assert not decision.allowed
    assert decision.messages == (LABELLER_LABELS_REFUSAL + key,)


def test_a_stale_algorithm_label_may_be_removed(policy: dict[str, Any]) -> None:
    """An older labeller may have written an algorithm label this one no longer writes: it is
    the labeller's to remove (never to set)."""
    before = labelled(node(labels={"cca.kubevirt.io/measurement-algo-md5": "true"}))
    after = copy.deepcopy(before)
    del after["metadata"]["labels"]["cca.kubevirt.io/measurement-algo-md5"]
    assert decide(policy, before, after).allowed


def test_removing_or_changing_foreign_labels_is_refused(policy: dict[str, Any]) -> None:
    before = node(labels={"topology.kubernetes.io/zone": "a"})
    after = copy.deepcopy(before)
    del after["metadata"]["labels"]["kubernetes.io/hostname"]
    after["metadata"]["labels"]["topology.kubernetes.io/zone"] = "b"
    decision = decide(policy, before, after)
    assert not decision.allowed
    assert "topology.kubernetes.io/zone" in decision.messages[0]
    assert "kubernetes.io/hostname" in decision.messages[0]


def test_a_foreign_annotation_is_refused(policy: dict[str, Any]) -> None:
    before = node()
    after = copy.deepcopy(before)
    after["metadata"]["annotations"]["node-labeller.kubevirt.io/skip-node"] = "true"
    decision = decide(policy, before, after)
    assert decision.messages == (
        "kubevirt-cca-labeller may only change the annotation cca.kubevirt.io/detection, "
        "not: node-labeller.kubevirt.io/skip-node",
    )


@pytest.mark.parametrize("change", ["taint", "unschedulable", "owner", "finalizer"])
def test_spec_owners_and_finalizers_are_refused(policy: dict[str, Any], change: str) -> None:
    before = node()
    after = labelled(before)
    if change == "taint":
        after["spec"]["taints"] = [{"key": "x", "effect": "NoSchedule"}]
    elif change == "unschedulable":
        after["spec"]["unschedulable"] = True
    elif change == "owner":
        after["metadata"]["ownerReferences"] = [
            {"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "u"}
        ]
    else:
        after["metadata"]["finalizers"] = ["example.com/keep"]
    decision = decide(policy, before, after)
    assert not decision.allowed
    assert len(decision.messages) == 1
    assert "may not change a Node's" in decision.messages[0]


def test_a_token_without_a_node_name_is_refused(policy: dict[str, Any]) -> None:
    before = node()
    decision = decide(policy, before, labelled(before), on_node=None)
    assert not decision.allowed
    assert decision.messages[0].startswith("kubevirt-cca-labeller's token names no node")


def test_other_users_are_not_this_policys_business(policy: dict[str, Any]) -> None:
    before = node()
    after = copy.deepcopy(before)
    after["metadata"]["labels"]["anything"] = "x"
    for user in (
        "system:serviceaccount:kubevirt:kubevirt-handler",
        "kubernetes-admin",
        "system:serviceaccount:other:kubevirt-cca-labeller",
    ):
        assert decide(policy, before, after, user=user) == Decision(applies=False, allowed=True)


def test_only_node_updates_are_matched(policy: dict[str, Any]) -> None:
    pod_request = request()
    pod_request["resource"] = {"group": "", "version": "v1", "resource": "pods"}
    assert not admit(policy, request=pod_request, obj={}, old={}).applies


_KEYS = st.sampled_from(
    [
        NODE_CCA_LABEL,
        f"{NODE_ALGO_LABEL_PREFIX}sha256",
        f"{NODE_ALGO_LABEL_PREFIX}sha512",
        "kubernetes.io/hostname",
        "kubevirt.io/schedulable",
        "cca.kubevirt.io/enabled",
        "example.com/team",
    ]
)
_LABELS = st.dictionaries(_KEYS, st.sampled_from(["true", "false", "x"]), max_size=5)


@settings(max_examples=60, deadline=None)
@given(before=_LABELS, after=_LABELS, own_node=st.booleans())
def test_allowed_exactly_when_only_owned_labels_change_on_its_own_node(
    before: dict[str, str], after: dict[str, str], own_node: bool
) -> None:
    policy = find(
        install_objects(InstallOptions()), "ValidatingAdmissionPolicy", NODE_RESTRICTION_POLICY
    )
    old = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "arm-1", "labels": before}}
    new = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "arm-1", "labels": after}}
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    expected = own_node and all(is_owned_label(k) for k in changed)
    decision = admit(
        policy, request=request(on_node="arm-1" if own_node else "arm-9"), obj=new, old=old
    )
    assert decision.allowed == expected, decision.messages


def test_every_cel_expression_of_every_installed_policy_compiles() -> None:
    """Includes the admission policies of deploy/policies/ (whatever is there)."""
    from kubevirt_cca.adapters.install_files import load_policies
    from tests.install.vap import compile_ok

    policies = [
        o
        for o in install_objects(InstallOptions(), load_policies())
        if o["kind"] == "ValidatingAdmissionPolicy"
    ]
    assert policies
    for policy in policies:
        spec = policy["spec"]
        expressions = [c["expression"] for c in spec.get("matchConditions", [])]
        expressions += [v["expression"] for v in spec.get("variables", [])]
        for validation in spec.get("validations", []):
            expressions.append(validation["expression"])
            if "messageExpression" in validation:
                expressions.append(validation["messageExpression"])
        for expression in expressions:
            compile_ok(expression)


@pytest.mark.parametrize(
    ("labels", "report"),
    [
        ({"kubernetes.io/arch": "arm64"}, "capable"),
        (
            {
                "kubernetes.io/arch": "arm64",
                NODE_CCA_LABEL: "true",
                f"{NODE_ALGO_LABEL_PREFIX}sha512": "true",
            },
            "capable",
        ),
        ({"kubernetes.io/arch": "arm64", NODE_CCA_LABEL: "true"}, "not capable"),
    ],
)
def test_the_labellers_real_patches_pass_the_installed_policy(
    policy: dict[str, Any], labels: dict[str, str], report: str
) -> None:
    """The labeller's own JSON patches (core/node/labelling.plan_node), applied, are admitted."""
    import jsonpatch

    from kubevirt_cca.core.node.detection_report import DetectionReport
    from kubevirt_cca.core.node.labelling import NodeMetadata, plan_node

    detection = (
        DetectionReport(True, ("sha256",), (), {}, None)
        if report == "capable"
        else DetectionReport(False, (), ("no /dev/kvm",), {}, None)
    )
    before = node(labels=labels)
    plan = plan_node(NodeMetadata.from_object(before), detection)
    assert plan.patch
    after = jsonpatch.apply_patch(copy.deepcopy(before), list(plan.patch))
    assert decide(policy, before, after) == Decision(applies=True, allowed=True)
    elsewhere = decide(
        policy,
        node("arm-2", labels=labels),
        {**after, "metadata": {**after["metadata"], "name": "arm-2"}},
    )
    assert not elsewhere.allowed


# --- Events (issue 13: where the labeller's Events may be created) ------------------------------

EVENTS_POLICY = "kubevirt-cca-labeller-events"


@pytest.fixture(scope="module")
def events_policy() -> dict[str, Any]:
    objects = install_objects(InstallOptions())
    binding = find(objects, "ValidatingAdmissionPolicyBinding", EVENTS_POLICY)
    assert binding["spec"] == {"policyName": EVENTS_POLICY, "validationActions": ["Deny"]}
    return find(objects, "ValidatingAdmissionPolicy", EVENTS_POLICY)


def event(**changes: Any) -> dict[str, Any]:
    """An Event as the labeller on arm-1 creates it (adapters/node_labeller.py)."""
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "arm-1.17f", "namespace": "default"},
        "involvedObject": {"apiVersion": "v1", "kind": "Node", "name": "arm-1", "uid": "u"},
        "reason": "CCACapable",
        "message": "node can run Arm CCA Realms",
        "type": "Normal",
        "source": {"component": "kubevirt-cca-labeller", "host": "arm-1"},
        "reportingComponent": "kubevirt-cca-labeller",
        "reportingInstance": "arm-1",
    }
    obj.update(changes)
    return obj


def decide_event(
    policy: dict[str, Any], obj: dict[str, Any], *, user: str = LABELLER, namespace: str = "default"
) -> Decision:
    req = request(user, operation="CREATE")
    req["resource"] = {"group": "", "version": "v1", "resource": "events"}
    req["namespace"] = namespace
    return admit(policy, request=req, obj=obj, old=None)


def test_the_labellers_own_events_are_allowed(events_policy: dict[str, Any]) -> None:
    for reason in ("CCACapable", "CCANotCapable", "CCAAlgorithmsChanged"):
        assert decide_event(events_policy, event(reason=reason)).allowed


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"involvedObject": {"kind": "Node", "name": "arm-2"}}, "only record Events about its own"),
        (
            {"involvedObject": {"kind": "Pod", "name": "arm-1", "namespace": "default"}},
            "only record Events about its own",
        ),
        ({"reason": "Killing"}, "have the reasons"),
        ({"reportingComponent": "kubelet"}, "are reported as"),
        # Found on the real kube-apiserver (tests/peers/apiserver/test_policies.py): the older
        # field alone named another component and passed.
        (
            {"reportingComponent": "", "source": {"component": "kubelet", "host": "arm-1"}},
            "are reported as",
        ),
        ({"source": {"component": "kubelet", "host": "arm-1"}}, "are reported as"),
    ],
)
def test_forged_events_are_refused(
    events_policy: dict[str, Any], change: dict[str, Any], words: str
) -> None:
    decision = decide_event(events_policy, event(**change))
    assert not decision.allowed
    assert len(decision.messages) == 1 and words in decision.messages[0]


def test_events_elsewhere_are_refused_and_others_untouched(events_policy: dict[str, Any]) -> None:
    decision = decide_event(events_policy, event(), namespace="kube-system")
    assert not decision.allowed and "in namespace default only" in decision.messages[0]
    assert not decide_event(events_policy, event()).messages
    other = decide_event(
        events_policy, event(reason="Anything"), user="system:serviceaccount:kube-system:someone"
    )
    assert not other.applies
