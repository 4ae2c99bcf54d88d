"""A ValidatingAdmissionPolicy evaluated the way the API server does, with a real CEL evaluator.

cel-python evaluates the policy's own CEL text. Kubernetes' CEL library adds functions to the
standard ones; the policies here use three of them, ``list.join(separator)``,
``string.lowerAscii()`` and ``string.replace(old, new)``, provided below. ``params`` is the
object a binding's ``paramRef`` names (for ours, the ConfigMap kubevirt-cca-config).
The order is the API server's: match constraints, match conditions (all true, else the policy
does not apply), variables, then every validation; a validation that errors counts as failed
(``failurePolicy: Fail``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import celpy
from celpy import celtypes
from celpy.evaluation import CELFunction

_ENV = celpy.Environment()


def _join(values: celtypes.ListType, separator: celtypes.StringType) -> celtypes.StringType:
    return celtypes.StringType(str(separator).join(str(v) for v in values))


def _lower_ascii(value: celtypes.StringType) -> celtypes.StringType:
    # Kubernetes' strings library: only A-Z change (str.lower would also fold non-ASCII).
    return celtypes.StringType(
        "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in str(value))
    )


def _replace(
    value: celtypes.StringType, old: celtypes.StringType, new: celtypes.StringType
) -> celtypes.StringType:
    return celtypes.StringType(str(value).replace(str(old), str(new)))


FUNCTIONS: dict[str, CELFunction] = {
    "join": _join,
    "lowerAscii": _lower_ascii,
    "replace": _replace,
}


def evaluate(expression: str, activation: dict[str, Any]) -> Any:
    program = _ENV.program(_ENV.compile(expression), functions=FUNCTIONS)
    return program.evaluate(activation)


def compile_ok(expression: str) -> None:
    """Raises when ``expression`` is not valid CEL."""
    _ENV.compile(expression)


@dataclass(frozen=True)
class Decision:
    applies: bool
    allowed: bool
    messages: tuple[str, ...] = ()


def _is_true(value: Any) -> bool:
    return isinstance(value, celtypes.BoolType) and bool(value)


def _matches_rules(policy: dict[str, Any], request: dict[str, Any]) -> bool:
    rules = policy["spec"]["matchConstraints"]["resourceRules"]
    return any(
        request["operation"] in rule["operations"]
        and request["resource"]["resource"] in rule["resources"]
        and request["resource"]["group"] in rule["apiGroups"]
        for rule in rules
    )


def admit(
    policy: dict[str, Any],
    *,
    request: dict[str, Any],
    obj: dict[str, Any] | None,
    old: dict[str, Any] | None,
    params: dict[str, Any] | None = None,
) -> Decision:
    if not _matches_rules(policy, request):
        return Decision(applies=False, allowed=True)
    activation: dict[str, Any] = {
        "request": celpy.json_to_cel(request),
        "object": celpy.json_to_cel(obj),
        "oldObject": celpy.json_to_cel(old),
        "params": celpy.json_to_cel(params),
    }
    for condition in policy["spec"].get("matchConditions", []):
        if not _is_true(evaluate(condition["expression"], activation)):
            return Decision(applies=False, allowed=True)
    variables: dict[str, Any] = {}
    activation["variables"] = celtypes.MapType({})
    for variable in policy["spec"].get("variables", []):
        variables[variable["name"]] = evaluate(variable["expression"], activation)
        activation["variables"] = celtypes.MapType(
            {celtypes.StringType(k): v for k, v in variables.items()}
        )
    messages: list[str] = []
    for validation in policy["spec"]["validations"]:
        result = evaluate(validation["expression"], activation)
        if _is_true(result):
            continue
        if isinstance(result, celpy.CELEvalError):
            messages.append(f"expression '{validation['expression']}' resulted in error: {result}")
            continue
        if "messageExpression" in validation:
            messages.append(str(evaluate(validation["messageExpression"], activation)))
        else:
            messages.append(validation.get("message", f"failed: {validation['expression']}"))
    return Decision(applies=True, allowed=not messages, messages=tuple(messages))
