"""Rewrite a manifest between VEP 129's native form and the label + annotation form.

VEP 129 puts the request at ``spec.domain.launchSecurity.cca``. Stock KubeVirt's schema has no
such field, so ``kubectl`` rejects it or the API server drops it and the VM would start as a
plain VM. The same request in metadata survives: the label ``cca.kubevirt.io/enabled: "true"``
and, when parameters are set, the annotation ``cca.kubevirt.io/launch-security``
(:func:`convert`). Once KubeVirt implements CCA itself, :func:`to_native` hands a manifest
back (docs/admin.md, "KubeVirt's own CCA: handing over").
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubevirt_cca.constants import (
    ENABLED_LABEL,
    ENABLED_VALUE,
    LAUNCH_SECURITY_ANNOTATION,
    NATIVE_CCA_SCHEMA_PATH,
)
from kubevirt_cca.core.vmi.request import TEMPLATE_PATHS, find_template, parse_template

NATIVE_FIELD = NATIVE_CCA_SCHEMA_PATH


@dataclass(frozen=True)
class Conversion:
    """The rewritten object and one sentence per change (empty: nothing was in native form)."""

    obj: dict[str, Any]
    changes: tuple[str, ...]


def native_field(obj: Mapping[str, Any]) -> str | None:
    """The path of a native-form CCA request in ``obj``, or ``None`` when there is none."""
    template = find_template(obj)
    domain = template.spec.get("domain")
    launch_security = domain.get("launchSecurity") if isinstance(domain, Mapping) else None
    if isinstance(launch_security, Mapping) and "cca" in launch_security:
        return template.path(*NATIVE_FIELD)
    return None


def convert(obj: Mapping[str, Any]) -> Conversion:
    """``obj`` with its native-form request moved into metadata; everything else kept.

    The request is read with the shared parser first, so an invalid one raises
    :class:`~kubevirt_cca.errors.RequestError` and nothing is rewritten.
    """
    field = native_field(obj)
    if field is None:
        return Conversion(copy.deepcopy(dict(obj)), ())
    request = parse_template(find_template(obj))
    assert request is not None  # a native request always parses to a request or raises
    out = copy.deepcopy(dict(obj))
    node = out
    for part in TEMPLATE_PATHS[str(out.get("kind", "VirtualMachineInstance"))]:
        node = node[part]
    domain = node["spec"]["domain"]
    del domain["launchSecurity"]["cca"]
    changes = [f"removed {field} (stock KubeVirt has no such field)"]
    if not domain["launchSecurity"]:
        del domain["launchSecurity"]
    metadata = node.get("metadata")
    if not isinstance(metadata, dict):
        metadata = node["metadata"] = {}
    labels = metadata.get("labels")
    if not isinstance(labels, dict):
        labels = metadata["labels"] = {}
    prefix = f"{_prefix(field)}metadata"
    if labels.get(ENABLED_LABEL) != ENABLED_VALUE:
        labels[ENABLED_LABEL] = ENABLED_VALUE
        changes.append(f'set {prefix}.labels[{ENABLED_LABEL}] to "{ENABLED_VALUE}"')
    parameters = request.to_json()
    if parameters:
        annotations = metadata.get("annotations")
        if not isinstance(annotations, dict):
            annotations = metadata["annotations"] = {}
        value = json.dumps(parameters, separators=(",", ":"))
        if annotations.get(LAUNCH_SECURITY_ANNOTATION) != value:
            annotations[LAUNCH_SECURITY_ANNOTATION] = value
            changes.append(f"set {prefix}.annotations[{LAUNCH_SECURITY_ANNOTATION}] to {value}")
    return Conversion(out, tuple(changes))


def _prefix(field: str) -> str:
    return field[: -len(".".join(NATIVE_FIELD))]


def to_native(obj: Mapping[str, Any]) -> Conversion:
    """``obj`` with its label + annotation request moved to ``spec.domain.launchSecurity.cca``.

    The reverse of :func:`convert`, for handing a manifest over to a KubeVirt that implements
    CCA itself. The request is read with the shared parser first (an invalid one raises
    :class:`~kubevirt_cca.errors.RequestError`, nothing is rewritten); an object that does not
    ask for CCA, or already has the native field, comes back unchanged.
    """
    template = find_template(obj)
    request = parse_template(template)
    if request is None or native_field(obj) is not None:
        return Conversion(copy.deepcopy(dict(obj)), ())
    out = copy.deepcopy(dict(obj))
    node = out
    for part in TEMPLATE_PATHS[str(out.get("kind", "VirtualMachineInstance"))]:
        node = node[part]
    metadata = node["metadata"]
    changes = []
    for section, key in (("labels", ENABLED_LABEL), ("annotations", LAUNCH_SECURITY_ANNOTATION)):
        values = metadata.get(section)
        if isinstance(values, dict) and key in values:
            del values[key]
            changes.append(f"removed {template.path('metadata', f'{section}[{key}]')}")
            if not values:
                del metadata[section]
    spec = node.setdefault("spec", {})
    domain = spec.setdefault("domain", {})
    launch_security = domain.setdefault("launchSecurity", {})
    launch_security["cca"] = request.to_json()
    changes.append(
        f"set {template.path(*NATIVE_FIELD)} to "
        f"{json.dumps(launch_security['cca'], separators=(',', ':'))}"
    )
    return Conversion(out, tuple(changes))
