"""A request in the wrong place, refused by the webhook over real HTTPS (issue 13, section 1)."""

from __future__ import annotations

from typing import Any

import pytest

from kubevirt_cca.constants import ENABLED_LABEL, LAUNCH_SECURITY_ANNOTATION
from tests.admission.helpers import review
from tests.webhook.conftest import Webhook

VMI_SPEC: dict[str, Any] = {"domain": {"devices": {}}}
CASES = [
    (
        "/validate-templates",
        {
            "kind": "VirtualMachine",
            "metadata": {"name": "vm", "namespace": "default", "labels": {ENABLED_LABEL: "true"}},
            "spec": {"template": {"spec": VMI_SPEC}},
        },
        f"metadata.labels[{ENABLED_LABEL}]: {ENABLED_LABEL} was found on the VirtualMachine's own "
        "metadata",
    ),
    (
        "/validate-templates",
        {
            "kind": "VirtualMachinePool",
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {
                "virtualMachineTemplate": {
                    "metadata": {"annotations": {LAUNCH_SECURITY_ANNOTATION: "{}"}},
                    "spec": {
                        "template": {
                            "metadata": {"labels": {ENABLED_LABEL: "true"}},
                            "spec": VMI_SPEC,
                        }
                    },
                }
            },
        },
        f"spec.virtualMachineTemplate.metadata.annotations[{LAUNCH_SECURITY_ANNOTATION}]",
    ),
    (
        "/mutate-vmi",
        {
            "kind": "VirtualMachineInstance",
            "metadata": {
                "name": "v",
                "namespace": "default",
                "labels": {ENABLED_LABEL: "true"},
                "annotations": {"cca.kubevirt.io/launchSecurity": "{}"},
            },
            "spec": VMI_SPEC,
        },
        "did you mean the annotation cca.kubevirt.io/launch-security?",
    ),
    (
        "/validate-vmi",
        {
            "kind": "VirtualMachineInstance",
            "metadata": {
                "name": "v",
                "namespace": "default",
                "labels": {ENABLED_LABEL: "true"},
                "annotations": {
                    LAUNCH_SECURITY_ANNOTATION: (
                        '{"measurementAlgo":"sha256","measurementAlgo":"sha512"}'
                    )
                },
            },
            "spec": VMI_SPEC,
        },
        "gives the member 'measurementAlgo' more than once",
    ),
]


@pytest.mark.parametrize(("path", "obj", "words"), CASES, ids=[c[2][:30] for c in CASES])
def test_webhook_refuses_a_misplaced_request(
    webhook: Webhook, path: str, obj: dict[str, Any], words: str
) -> None:
    body = review(obj)
    status, answer = webhook.post(path, body)
    assert status == 200
    response = answer["response"]
    assert response["uid"] == body["request"]["uid"]
    assert response["allowed"] is False
    assert "patch" not in response
    assert words in response["status"]["message"]
    causes = response["status"]["details"]["causes"]
    assert any(words.split(":")[0] in f"{c['field']}: {c['message']}" for c in causes)
