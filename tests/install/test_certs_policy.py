"""The certificate identity's policies (core/install/certs_policy.py), evaluated with cel-python.

Fast feedback; tests/peers/apiserver/test_certs_identity.py proves the same on the real API
server with the identity's own token and ``certs ensure`` itself.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubevirt_cca.core.install import SELF_SIGNED, InstallOptions, install_objects
from kubevirt_cca.core.install.names import (
    CERTS_SECRET_POLICY,
    CERTS_WEBHOOK_POLICY,
    service_account_user,
)
from tests.install.vap import admit, compile_ok

USER = service_account_user("kubevirt-cca", "kubevirt-cca-certs")
OBJECTS = install_objects(InstallOptions(certificates=SELF_SIGNED))


def policy(name: str) -> dict[str, Any]:
    found = [o for o in OBJECTS if o["kind"] == "ValidatingAdmissionPolicy"]
    return next(o for o in found if o["metadata"]["name"] == name)


def configuration(kind: str) -> dict[str, Any]:
    return copy.deepcopy(next(o for o in OBJECTS if o["kind"] == kind))


def request(operation: str, resource: str, *, user: str = USER, **more: str) -> dict[str, Any]:
    group = "" if resource == "secrets" else "admissionregistration.k8s.io"
    return {
        "operation": operation,
        "resource": {"group": group, "version": "v1", "resource": resource},
        "userInfo": {"username": user},
        **more,
    }


def update(old: dict[str, Any], new: dict[str, Any], *, user: str = USER) -> tuple[bool, str]:
    decision = admit(
        policy(CERTS_WEBHOOK_POLICY),
        request=request("UPDATE", "validatingwebhookconfigurations", user=user),
        obj=new,
        old=old,
    )
    return decision.allowed, "; ".join(decision.messages)


def test_every_expression_compiles() -> None:
    for name in (CERTS_WEBHOOK_POLICY, CERTS_SECRET_POLICY):
        spec = policy(name)["spec"]
        for item in [*spec["matchConditions"], *spec.get("variables", []), *spec["validations"]]:
            compile_ok(item["expression"])
            if "messageExpression" in item:
                compile_ok(item["messageExpression"])


def test_setting_and_changing_the_ca_bundle_is_allowed() -> None:
    old = configuration("ValidatingWebhookConfiguration")
    new = copy.deepcopy(old)
    for hook in new["webhooks"]:
        hook["clientConfig"]["caBundle"] = "Q0E="
    assert update(old, new) == (True, "")
    newer = copy.deepcopy(new)
    newer["webhooks"][0]["clientConfig"]["caBundle"] = "T1RIRVI="
    assert update(new, newer) == (True, "")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda h: h.update(failurePolicy="Ignore"), "failurePolicy"),
        (lambda h: h["clientConfig"]["service"].update(path="/other"), "clientConfig"),
        (lambda h: h["clientConfig"].update(url="https://x.example"), "clientConfig"),
        (lambda h: h.update(namespaceSelector={"matchLabels": {"a": "b"}}), "namespaceSelector"),
        (lambda h: h.pop("objectSelector"), "objectSelector"),
        (lambda h: h["rules"][0].update(operations=["DELETE"]), "rules"),
        (
            lambda h: h.update(matchConditions=[{"name": "n", "expression": "false"}]),
            "matchConditions",
        ),
    ],
)
def test_every_other_field_is_refused(change: Any, field: str) -> None:
    old = configuration("ValidatingWebhookConfiguration")
    new = copy.deepcopy(old)
    change(new["webhooks"][0])
    allowed, message = update(old, new)
    assert not allowed
    assert message == (
        "kubevirt-cca-certs may change only clientConfig.caBundle of a webhook; changed: "
        f"validate-vmi.cca.kubevirt.io ({field})"
    )


def test_reordering_is_refused() -> None:
    old = configuration("ValidatingWebhookConfiguration")
    new = copy.deepcopy(old)
    new["webhooks"].reverse()
    allowed, message = update(old, new)
    assert not allowed
    assert "may not add, remove, rename or reorder webhooks" in message


def test_other_users_are_not_its_business() -> None:
    old = configuration("ValidatingWebhookConfiguration")
    new = copy.deepcopy(old)
    new["webhooks"] = []
    assert update(old, new, user="system:admin") == (True, "")


@pytest.mark.parametrize(
    ("namespace", "name", "allowed"),
    [
        ("kubevirt-cca", "kubevirt-cca-webhook-tls", True),
        ("kubevirt-cca", "other", False),
        ("default", "kubevirt-cca-webhook-tls", False),
    ],
)
def test_only_its_own_secret(namespace: str, name: str, allowed: bool) -> None:
    decision = admit(
        policy(CERTS_SECRET_POLICY),
        request=request("CREATE", "secrets", namespace=namespace, name=name),
        obj={"metadata": {"name": name, "namespace": namespace}},
        old=None,
    )
    assert decision.allowed is allowed, decision.messages
