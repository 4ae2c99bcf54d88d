"""Inputs the admission and webhook tests share: the shared KubeVirt manifests with the CCA
label added, AdmissionReview requests built from them, and KubeVirt's CRD schemas as
validators (structural: a field the schema does not know fails, as the API server would
prune it)."""

from __future__ import annotations

import copy
import functools
import uuid
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from kubevirt_cca.cli import main
from kubevirt_cca.constants import ENABLED_LABEL, ENABLED_VALUE
from kubevirt_cca.core.vmi.request import TEMPLATE_PATHS
from tests.conftest import shared_files, shared_path

MANIFESTS = shared_files("fixtures", "kubevirt", "manifests", pattern="*.yaml")
SCHEMA_FILES = {
    "VirtualMachineInstance": "virtualmachineinstance.yaml",
    "VirtualMachine": "virtualmachine.yaml",
    "VirtualMachineInstanceReplicaSet": "virtualmachineinstancereplicaset.yaml",
    "VirtualMachinePool": "virtualmachinepool.yaml",
    "VirtualMachineInstanceMigration": "virtualmachineinstancemigration.yaml",
    "KubeVirt": "kubevirt.yaml",
}
GROUPS = {
    "VirtualMachinePool": ("pool.kubevirt.io", "v1beta1"),
}
KUBEVIRT_CR: dict[str, Any] = {
    "apiVersion": "kubevirt.io/v1",
    "kind": "KubeVirt",
    "metadata": {"name": "kubevirt", "namespace": "kubevirt"},
    "spec": {
        "configuration": {
            "developerConfiguration": {"featureGates": ["WorkloadEncryptionCCA", "Sidecar"]}
        }
    },
}


def write(tmp_path: Path, name: str, obj: Any) -> str:
    """obj as YAML in tmp_path/name; its path, for a command line."""
    path = tmp_path / name
    path.write_text(yaml.safe_dump(obj))
    return str(path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``kubevirt-cca *argv`` in this process: exit code, stdout, stderr."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def require_manifests() -> None:
    """Skip the calling test module when ../shared's KubeVirt manifests are not there."""
    if not MANIFESTS:
        pytest.skip(
            "../shared is absent (fixtures/kubevirt/manifests not found); run with the "
            "shared fixtures beside the project to include these tests",
            allow_module_level=True,
        )


def load(path: Path) -> dict[str, Any]:
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert len(documents) == 1
    return dict(documents[0])


def manifest_ids() -> list[str]:
    return [p.stem for p in MANIFESTS]


def template_node(obj: dict[str, Any]) -> dict[str, Any]:
    node = obj
    for part in TEMPLATE_PATHS[obj.get("kind", "VirtualMachineInstance")]:
        node = node.setdefault(part, {})
    return node


def labelled(obj: dict[str, Any], annotation: str | None = None) -> dict[str, Any]:
    """A copy of ``obj`` asking for a Realm (label on its VMI template, optional parameters)."""
    out = copy.deepcopy(obj)
    metadata = template_node(out).setdefault("metadata", {})
    metadata.setdefault("labels", {})[ENABLED_LABEL] = ENABLED_VALUE
    if annotation is not None:
        metadata.setdefault("annotations", {})["cca.kubevirt.io/launch-security"] = annotation
    return out


def review(
    obj: dict[str, Any],
    *,
    operation: str = "CREATE",
    old: dict[str, Any] | None = None,
    uid: str | None = None,
) -> dict[str, Any]:
    """An AdmissionReview request as the API server sends it."""
    kind = obj.get("kind", "VirtualMachineInstance")
    group, version = GROUPS.get(kind, ("kubevirt.io", "v1"))
    metadata = obj["metadata"] if isinstance(obj.get("metadata"), dict) else {}
    request: dict[str, Any] = {
        "uid": uid or str(uuid.uuid4()),
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": group, "version": version, "resource": kind.lower() + "s"},
        "operation": operation,
        "namespace": metadata.get("namespace", "default"),
        "name": metadata.get("name", ""),
        "userInfo": {"username": "alice"},
        "object": copy.deepcopy(obj),
        "oldObject": copy.deepcopy(old),
        "dryRun": False,
    }
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


@functools.cache
def crd_validator(kind: str) -> jsonschema.Draft7Validator:
    """KubeVirt's structural schema for ``kind`` as a JSON Schema validator."""
    path = shared_path("fixtures", "kubevirt", "crd-schemas", SCHEMA_FILES[kind])
    schema = yaml.safe_load(path.read_text())["openAPIV3Schema"]
    return jsonschema.Draft7Validator(structural(schema))


def structural(schema: Any) -> Any:
    """An OpenAPI v3 structural schema as JSON Schema.

    - ``x-kubernetes-int-or-string`` becomes integer-or-string;
    - ``nullable`` allows null;
    - an object with ``properties`` and neither ``additionalProperties`` nor
      ``x-kubernetes-preserve-unknown-fields`` refuses other members (the API server would
      prune them: for us that is a failure, the field would be lost);
    - other ``x-kubernetes-*`` keys and ``format`` are dropped (not validation here).
    """
    if isinstance(schema, list):
        return [structural(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key.startswith("x-kubernetes-") or key in ("format", "nullable", "description"):
            continue
        if key == "properties":
            out[key] = {name: structural(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not", "allOf", "anyOf", "oneOf"):
            out[key] = structural(value)
        else:
            out[key] = value
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def schema_errors(obj: dict[str, Any]) -> list[str]:
    validator = crd_validator(obj.get("kind", "VirtualMachineInstance"))
    return [
        f"{'.'.join(str(p) for p in e.absolute_path)}: {e.message}"
        for e in validator.iter_errors(obj)
    ]
