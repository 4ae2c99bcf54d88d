"""Issue 21 item 11, over real HTTPS: a labelled object whose native ``launchSecurity.cca`` the
API server pruned to ``launchSecurity: {}`` is refused with the native-form explanation, at
every entrance (VMI mutation and validation, and the templates of VMs, replica sets and pools).
The real API server's pruning itself: tests/peers/apiserver/test_admission.py."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubevirt_cca.constants import ENABLED_LABEL, LAUNCH_SECURITY_ANNOTATION
from tests.admission.helpers import review
from tests.webhook.conftest import Webhook

PRUNED_SPEC: dict[str, Any] = {"domain": {"devices": {}, "launchSecurity": {}}}
LABELLED = {"labels": {ENABLED_LABEL: "true"}}


def template(kind: str) -> dict[str, Any]:
    inner = {"metadata": copy.deepcopy(LABELLED), "spec": copy.deepcopy(PRUNED_SPEC)}
    if kind == "VirtualMachinePool":
        spec: dict[str, Any] = {"virtualMachineTemplate": {"spec": {"template": inner}}}
    else:
        spec = {"template": inner}
    return {"kind": kind, "metadata": {"name": "x", "namespace": "default"}, "spec": spec}


VMI: dict[str, Any] = {
    "kind": "VirtualMachineInstance",
    "metadata": {"name": "v", "namespace": "default", **LABELLED},
    "spec": PRUNED_SPEC,
}
CASES = [
    ("/mutate-vmi", VMI, "spec.domain.launchSecurity"),
    ("/validate-vmi", VMI, "spec.domain.launchSecurity"),
    ("/validate-templates", template("VirtualMachine"), "spec.template.spec.domain.launchSecurity"),
    (
        "/validate-templates",
        template("VirtualMachineInstanceReplicaSet"),
        "spec.template.spec.domain.launchSecurity",
    ),
    (
        "/validate-templates",
        template("VirtualMachinePool"),
        "spec.virtualMachineTemplate.spec.template.spec.domain.launchSecurity",
    ),
]


@pytest.mark.parametrize(
    ("path", "obj", "field"), CASES, ids=[f"{c[0]}-{c[1]['kind']}" for c in CASES]
)
def test_a_pruned_native_request_is_refused_with_the_native_form_explanation(
    webhook: Webhook, path: str, obj: dict[str, Any], field: str
) -> None:
    body = review(obj)
    status, answer = webhook.post(path, body)
    assert status == 200
    response = answer["response"]
    assert response["allowed"] is False and "patch" not in response
    message = response["status"]["message"]
    assert (
        f"{field}: is empty: the API server dropped cca from VEP 129's native form {field}.cca"
    ) in message
    assert "the Realm's parameters are gone" in message
    assert (
        f'the label {ENABLED_LABEL}: "true" plus the annotation {LAUNCH_SECURITY_ANNOTATION}'
    ) in message
    assert "kubevirt-cca convert" in message
    causes = response["status"]["details"]["causes"]
    assert any(c["field"] == field and "dropped cca" in c["message"] for c in causes)


def test_the_same_vmi_with_its_request_in_metadata_is_admitted(webhook: Webhook) -> None:
    """Without the empty launchSecurity the refusal goes: it is that field, nothing else."""
    fixed = copy.deepcopy(VMI)
    del fixed["spec"]["domain"]["launchSecurity"]
    fixed["metadata"]["annotations"] = {LAUNCH_SECURITY_ANNOTATION: '{"measurementAlgo":"sha256"}'}
    status, answer = webhook.post("/mutate-vmi", review(fixed))
    assert status == 200 and answer["response"]["allowed"] is True
