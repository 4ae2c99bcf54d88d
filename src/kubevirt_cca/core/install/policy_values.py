"""The install-time values rendered into the admission policies (issue 21 item 6).

``kubevirt-cca-vmi-needs-hook`` and ``kubevirt-cca-launcher-pod-needs-plugin`` need the hook
image and the integration mode. They used to read them from ``kubevirt-cca-config`` through
``paramKind``/``paramRef``; kube-apiserver 1.36 then loses sight of the ConfigMap after an
uninstall and reinstall (kubernetes#133827) and refuses every CCA VMI with "no params found"
until it restarts. So the values are written into the policies themselves, as CEL string
literals in the variables of those names, by ``kubevirt-cca manifests`` (and in ``deploy/``
with the defaults). No policy has a parameter; changing ``hookImage`` or ``integrationMode``
means rendering and applying the install again (docs/admin.md).

The policy files in ``deploy/policies/`` hold the literals for the default options, so
``kubectl apply -k deploy/`` and ``manifests`` agree; this module replaces them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kubevirt_cca.core.cluster.integration import INTEGRATION_MODE_KEY
from kubevirt_cca.core.cluster.settings import HOOK_IMAGE_KEY
from kubevirt_cca.core.install.names import InstallOptions, Manifest
from kubevirt_cca.errors import ManifestError

POLICY_KIND = "ValidatingAdmissionPolicy"
# The policies whose variables carry install values, and the ConfigMap keys they mirror.
RENDERED_POLICIES = ("kubevirt-cca-vmi-needs-hook", "kubevirt-cca-launcher-pod-needs-plugin")
RENDERED_VARIABLES = (HOOK_IMAGE_KEY, INTEGRATION_MODE_KEY)


def policy_values(options: InstallOptions) -> dict[str, str]:
    """The value of each rendered variable (the same the install's ConfigMap holds)."""
    return {
        HOOK_IMAGE_KEY: options.image,
        INTEGRATION_MODE_KEY: options.integration_mode.value,
    }


def cel_string(value: str) -> str:
    """``value`` as a CEL string literal (a JSON string is one: same quotes and escapes)."""
    return json.dumps(value)


def render_policy(obj: Mapping[str, Any], options: InstallOptions) -> Manifest:
    """``obj`` as installed: a rendered policy gets ``options``' values; other objects as they are.

    :class:`ManifestError` when a rendered policy lacks one of its variables, or still has a
    parameter: the install would not say what it enforces.
    """
    out = dict(obj)
    name = (obj.get("metadata") or {}).get("name")
    if obj.get("kind") != POLICY_KIND or name not in RENDERED_POLICIES:
        return out
    spec = dict(obj.get("spec") or {})
    if "paramKind" in spec:
        raise ManifestError(f"{POLICY_KIND} {name}: has paramKind; its values are rendered in")
    values = policy_values(options)
    variables = []
    seen = set()
    for variable in spec.get("variables") or []:
        if isinstance(variable, Mapping) and variable.get("name") in values:
            seen.add(variable["name"])
            variable = {**variable, "expression": cel_string(values[variable["name"]])}
        variables.append(variable)
    missing = [key for key in RENDERED_VARIABLES if key not in seen]
    if missing:
        raise ManifestError(
            f"{POLICY_KIND} {name}: "
            f"expected the variables {', '.join(missing)} to render the install's values into"
        )
    spec["variables"] = variables
    out["spec"] = spec
    return out


def rendered_values(policy: Mapping[str, Any]) -> dict[str, str | None]:
    """What a policy in a cluster was rendered with: each rendered variable's literal
    (``None`` when the variable is missing or not a plain string literal)."""
    spec = policy.get("spec")
    variables = spec.get("variables") if isinstance(spec, Mapping) else None
    found: dict[str, str | None] = dict.fromkeys(RENDERED_VARIABLES)
    for variable in variables if isinstance(variables, list) else []:
        if not isinstance(variable, Mapping) or variable.get("name") not in found:
            continue
        expression = variable.get("expression")
        try:
            value = json.loads(expression) if isinstance(expression, str) else None
        except json.JSONDecodeError:
            value = None
        found[variable["name"]] = value if isinstance(value, str) else None
    return found
