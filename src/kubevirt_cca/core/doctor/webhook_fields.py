"""Every field of our webhooks against what ``kubevirt-cca manifests`` renders.

The API server fills in defaults when a webhook configuration is stored (``matchPolicy:
Equivalent``, ``namespaceSelector: {}``, ``objectSelector: {}``, ``timeoutSeconds: 10``,
``reinvocationPolicy: Never`` on mutating webhooks, ``scope: "*"`` on each rule,
``failurePolicy: Fail``, port 443 on a Service), so both sides are compared with those defaults
applied: an untouched install has no difference, and a field set to its default by hand is no
difference either. ``clientConfig`` and ``failurePolicy`` are judged in ``webhooks.py`` (where a
change matters differently per webhook); every other field of the admissionregistration/v1
webhook types is compared here, as is the set of webhooks.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from kubevirt_cca.core.doctor.model import objects

# The fields of MutatingWebhook / ValidatingWebhook (admissionregistration.k8s.io/v1) compared
# here, in the order a difference is reported.
COMPARED_FIELDS = (
    "rules",
    "namespaceSelector",
    "objectSelector",
    "matchConditions",
    "matchPolicy",
    "sideEffects",
    "timeoutSeconds",
    "reinvocationPolicy",
    "admissionReviewVersions",
)
WEBHOOK_DEFAULTS: dict[str, Any] = {
    "failurePolicy": "Fail",
    "matchPolicy": "Equivalent",
    "namespaceSelector": {},
    "objectSelector": {},
    "timeoutSeconds": 10,
    "matchConditions": [],
}
MUTATING_DEFAULTS: dict[str, Any] = {"reinvocationPolicy": "Never"}
RULE_DEFAULTS: dict[str, Any] = {"scope": "*"}


def with_defaults(hook: dict[str, Any], *, mutating: bool) -> dict[str, Any]:
    """``hook`` as the API server stores it: its defaults filled in where a field is unset."""
    out = copy.deepcopy(hook)
    defaults = {**WEBHOOK_DEFAULTS, **(MUTATING_DEFAULTS if mutating else {})}
    for key, value in defaults.items():
        if out.get(key) is None:
            out[key] = copy.deepcopy(value)
    if isinstance(out.get("rules"), list):
        out["rules"] = [
            {**RULE_DEFAULTS, **{k: v for k, v in rule.items() if v is not None}}
            if isinstance(rule, dict)
            else rule
            for rule in out["rules"]
        ]
    service = (out.get("clientConfig") or {}).get("service")
    if isinstance(service, dict) and service.get("port") is None:
        service["port"] = 443
    return out


def shown(value: Any) -> str:
    """A field's value in a report line: compact JSON, or "unset"."""
    if value is None:
        return "unset"
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def field_differences(
    name: str, found: dict[str, Any], expected: dict[str, Any], *, mutating: bool
) -> dict[str, str]:
    """One line per compared field where webhook ``name`` differs from what is rendered, by
    field."""
    have = with_defaults(found, mutating=mutating)
    want = with_defaults(expected, mutating=mutating)
    return {
        field: f"{name}: {field} is {shown(have.get(field))}, expected {shown(want.get(field))}"
        for field in COMPARED_FIELDS
        if have.get(field) != want.get(field)
    }


def extra_webhooks(kind: str, configuration: str, found: Any, shipped: list[str]) -> list[str]:
    """A line for each webhook in the configuration that kubevirt-cca does not ship."""
    return [
        f"{kind} {configuration} has a webhook {hook.get('name')} that kubevirt-cca does not ship: "
        "the API server calls it for the same objects; delete it "
        "(another product's webhook belongs in a configuration of its own)"
        for hook in objects(found)
        if hook.get("name") not in shipped
    ]
