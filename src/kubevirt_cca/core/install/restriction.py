"""ValidatingAdmissionPolicies that fence one of our ServiceAccounts in, where RBAC cannot.

RBAC says which verbs an identity has on which objects; it cannot say which fields of an object
it may change, or which name an object it creates may have. A policy evaluated in the API server
can: matched to the ServiceAccount's user name only, it compares ``oldObject`` with ``object``.
The labeller's node and Event policies (``labeller_manifests.py``) and the certificate identity's
(``certs_policy.py``) are built here.
"""

from __future__ import annotations

from typing import Any

from kubevirt_cca.core.install.names import Manifest, metadata

ADMISSION_API = "admissionregistration.k8s.io/v1"


def or_empty(expr: str, field: str, empty: str) -> str:
    """CEL: ``expr.field``, or ``empty`` when the field is absent."""
    return f"has({expr}.{field}) ? {expr}.{field} : {empty}"


def resource_rule(group: str, resources: list[str], operations: list[str]) -> dict[str, Any]:
    return {
        "apiGroups": [group],
        "apiVersions": ["v1"],
        "operations": operations,
        "resources": resources,
    }


def service_account_policy(
    name: str,
    *,
    component: str,
    user: str,
    rules: list[dict[str, Any]],
    variables: list[dict[str, str]],
    validations: list[dict[str, str]],
) -> list[Manifest]:
    """A ValidatingAdmissionPolicy on ``rules`` for requests by ``user`` only, and its Deny
    binding (failurePolicy Fail: a policy that cannot be evaluated refuses)."""
    policy: Manifest = {
        "apiVersion": ADMISSION_API,
        "kind": "ValidatingAdmissionPolicy",
        "metadata": metadata(name, component=component),
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": rules},
            "matchConditions": [
                {
                    "name": f"{component}-service-account",
                    "expression": f"request.userInfo.username == '{user}'",
                }
            ],
            # the API server stores no empty list: write none, so what is applied is what is
            # stored (doctor and `helm upgrade` compare the two)
            **({"variables": variables} if variables else {}),
            "validations": validations,
        },
    }
    bound: Manifest = {
        "apiVersion": ADMISSION_API,
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": metadata(name, component=component),
        "spec": {"policyName": name, "validationActions": ["Deny"]},
    }
    return [policy, bound]
