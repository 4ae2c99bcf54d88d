"""A ValidatingAdmissionPolicy file evaluated with a real CEL implementation (cel-python):
match constraints (resource rules and objectSelector, as the API server reads them), then every
validation on ``object``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import celpy
import yaml

from kubevirt_cca.core.install import InstallOptions
from kubevirt_cca.core.install.policy_values import render_policy
from tests.conftest import ROOT
from tests.install import vap

POLICIES = ROOT / "deploy" / "policies"
# kind -> (API group, resource), for the kinds these tests send
RESOURCES = {
    "Pod": ("", "pods"),
    "VirtualMachineInstance": ("kubevirt.io", "virtualmachineinstances"),
}


class PolicyFile:
    """The policy as ``kubevirt-cca manifests`` installs it with ``options``."""

    def __init__(self, path: Path, options: InstallOptions | None = None) -> None:
        self.policy, self.binding = (
            render_policy(d, options or InstallOptions())
            for d in yaml.safe_load_all(path.read_text())
        )
        env = celpy.Environment()
        self.programs = [
            (" ".join(v["message"].split()), env.program(env.compile(v["expression"])))
            for v in self.policy["spec"]["validations"]
        ]

    def matches(self, obj: dict[str, Any], operation: str) -> bool:
        group, resource = RESOURCES[obj["kind"]]
        constraints = self.policy["spec"]["matchConstraints"]
        if not any(
            group in r["apiGroups"] and resource in r["resources"] and operation in r["operations"]
            for r in constraints["resourceRules"]
        ):
            return False
        labels = obj.get("metadata", {}).get("labels") or {}
        for expression in constraints.get("objectSelector", {}).get("matchExpressions", []):
            key, operator = expression["key"], expression["operator"]
            if operator == "Exists" and key not in labels:
                return False
            if operator == "In" and labels.get(key) not in expression["values"]:
                return False
            assert operator in ("Exists", "In"), operator
        return True

    def denials(self, obj: dict[str, Any], operation: str = "CREATE") -> list[str]:
        """Messages of failed validations."""
        if not self.matches(obj, operation):
            return []
        group, resource = RESOURCES[obj["kind"]]
        request = {
            "kind": {"kind": obj["kind"]},
            "operation": operation,
            "resource": {"group": group, "resource": resource},
        }
        decision = vap.admit(
            self.policy,
            request=request,
            obj=obj,
            old=None,
        )
        for message in decision.messages:
            assert "resulted in error" not in message, message
        return [" ".join(m.split()) for m in decision.messages]
