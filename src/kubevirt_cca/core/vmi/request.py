"""The CCA request: what a VMI (or the VMI template of a VM, replica set or pool) asks for.

One parser serves admission, the hook and the offline tools, so a VMI can never be read one way
at ``kubectl apply`` and another way when its domain is defined.

The request travels in metadata (docs/vm-owners.md): the label ``cca.kubevirt.io/enabled:
"true"`` asks for a Realm, and the optional annotation ``cca.kubevirt.io/launch-security``
carries VEP 129's ``CCA`` struct as JSON. Where a cluster's KubeVirt keeps VEP 129's native
``spec.domain.launchSecurity.cca``, that is read as the same struct. A request whose
``launchSecurity`` is empty (``{}``: what is left when the API server prunes ``cca`` from a
client that does not validate fields strictly) is refused: its parameters were lost on the way.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from kubevirt_cca.constants import (
    CCA_PARAMETER_KEYS,
    ENABLED_LABEL,
    ENABLED_VALUE,
    LAUNCH_SECURITY_ANNOTATION,
    MEASUREMENT_ALGO_KEY,
    MEASUREMENT_ALGORITHMS,
    MEASUREMENT_LOG_KEY,
    PERSONALIZATION_VALUE_BYTES,
    PERSONALIZATION_VALUE_KEY,
)
from kubevirt_cca.core.vmi.placement import TEMPLATE_PATHS, misplaced_keys
from kubevirt_cca.core.wire.jsontext import DuplicateMember, NotJSONValue, UnreadableJSON, loads
from kubevirt_cca.errors import RequestError, Violation

__all__ = [
    "TEMPLATE_PATHS",
    "CCARequest",
    "Template",
    "find_template",
    "native_form_advice",
    "parse_request",
    "parse_template",
]

MeasurementAlgo = Literal["sha256", "sha384", "sha512"]

_LOG_WORDS = {"yes": True, "no": False}


@dataclass(frozen=True)
class CCARequest:
    """A valid request for a Realm. ``None`` means "not set": the platform default applies."""

    measurement_algo: MeasurementAlgo | None = None
    measurement_log: bool | None = None
    personalization_value: str | None = None

    @property
    def personalization_bytes(self) -> bytes | None:
        """The 64 bytes the personalization value stands for."""
        if self.personalization_value is None:
            return None
        return base64.b64decode(self.personalization_value, validate=True)

    def to_json(self) -> dict[str, Any]:
        """The annotation form: VEP 129's ``CCA`` struct with only the set keys."""
        out: dict[str, Any] = {}
        if self.measurement_algo is not None:
            out[MEASUREMENT_ALGO_KEY] = self.measurement_algo
        if self.measurement_log is not None:
            out[MEASUREMENT_LOG_KEY] = self.measurement_log
        if self.personalization_value is not None:
            out[PERSONALIZATION_VALUE_KEY] = self.personalization_value
        return out


@dataclass(frozen=True)
class Template:
    """The VMI template inside an object: its metadata, spec and the path prefix to it."""

    kind: str
    metadata: Mapping[str, Any]
    spec: Mapping[str, Any]
    prefix: str

    def path(self, *parts: str) -> str:
        """A field path below the template, written the way KubeVirt writes causes."""
        joined = ".".join(parts)
        return f"{self.prefix}.{joined}" if self.prefix else joined


def find_template(obj: Mapping[str, Any]) -> Template:
    """Locate the VMI template of a VMI, VM, VMI replica set or VM pool.

    An object without ``kind`` is read as a VMI (virt-launcher hands the hook bare VMI JSON).
    """
    if not isinstance(obj, Mapping):
        raise RequestError([Violation("<root>", "expected a Kubernetes object (a mapping)")])
    kind = obj.get("kind", "VirtualMachineInstance")
    if kind not in TEMPLATE_PATHS:
        kinds = ", ".join(TEMPLATE_PATHS)
        raise RequestError([Violation("kind", f"kubevirt-cca reads {kinds}; got {kind!r}")])
    node: Any = obj
    walked: list[str] = []
    for part in TEMPLATE_PATHS[kind]:
        walked.append(part)
        node = node.get(part) if isinstance(node, Mapping) else None
        if node is None:
            node = {}
        if not isinstance(node, Mapping):
            raise RequestError([Violation(".".join(walked), "expected an object")])
    metadata = _mapping_at(node, "metadata", ".".join([*walked, "metadata"]))
    spec = _mapping_at(node, "spec", ".".join([*walked, "spec"]))
    return Template(kind=str(kind), metadata=metadata, spec=spec, prefix=".".join(walked))


def parse_request(obj: Mapping[str, Any]) -> CCARequest | None:
    """Read the CCA request of ``obj``: ``None`` when it asks for no Realm.

    Raises :class:`RequestError` listing every problem when the request is invalid, including
    parameters without the enable label and our keys in a place kubevirt-cca does not read
    (:func:`~kubevirt_cca.core.vmi.placement.misplaced_keys`): never silently a plain VM.
    """
    template = find_template(obj)
    misplaced = misplaced_keys(obj)
    try:
        request = parse_template(template)
    except RequestError as exc:
        raise RequestError([*misplaced, *exc.violations]) from None
    if misplaced:
        raise RequestError(misplaced)
    return request


def parse_template(template: Template) -> CCARequest | None:
    """:func:`parse_request` for an already located template."""
    violations: list[Violation] = []
    labels = _string_map(template, "labels", violations)
    annotations = _string_map(template, "annotations", violations)

    enabled = _read_enable_label(template, labels, violations)
    annotated: CCARequest | None = None
    annotation_path = template.path("metadata", f"annotations[{LAUNCH_SECURITY_ANNOTATION}]")
    if LAUNCH_SECURITY_ANNOTATION in annotations:
        annotated = _parse_annotation(
            annotations[LAUNCH_SECURITY_ANNOTATION], annotation_path, violations
        )
        if not enabled and ENABLED_LABEL not in labels:
            violations.append(
                Violation(
                    annotation_path,
                    f'CCA parameters need the label {ENABLED_LABEL}: "{ENABLED_VALUE}" '
                    "on the same object; add the label, or remove the annotation for a plain VM",
                )
            )

    native = _parse_native(template, violations)
    requested = enabled or native is not None
    if requested:
        _check_other_launch_security(template, violations)
    if native is not None and annotated is not None and native != annotated:
        violations.append(
            Violation(
                template.path("spec", "domain", "launchSecurity", "cca"),
                f"disagrees with the annotation {LAUNCH_SECURITY_ANNOTATION} "
                f"({json.dumps(native.to_json(), sort_keys=True)} vs "
                f"{json.dumps(annotated.to_json(), sort_keys=True)}); give the parameters once",
            )
        )
    if violations:
        raise RequestError(violations)
    if not requested:
        return None
    if annotated is not None:
        return annotated
    return native if native is not None else CCARequest()


# --- helpers -----------------------------------------------------------------------------------


def _mapping_at(node: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
    value = node.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RequestError([Violation(path, "expected an object")])
    return value


def _string_map(template: Template, key: str, violations: list[Violation]) -> dict[str, str]:
    value = template.metadata.get(key)
    path = template.path("metadata", key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        violations.append(Violation(path, "expected a map of strings to strings"))
        return {}
    result: dict[str, str] = {}
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str):
            if k in (ENABLED_LABEL, LAUNCH_SECURITY_ANNOTATION):
                violations.append(
                    Violation(f"{path}[{k}]", f"expected a string, got {_json_type(v)}")
                )
            continue
        result[k] = v
    return result


def _read_enable_label(
    template: Template, labels: Mapping[str, str], violations: list[Violation]
) -> bool:
    if ENABLED_LABEL not in labels:
        return False
    value = labels[ENABLED_LABEL]
    if value == ENABLED_VALUE:
        return True
    violations.append(
        Violation(
            template.path("metadata", f"labels[{ENABLED_LABEL}]"),
            f'must be "{ENABLED_VALUE}" to ask for a Realm, got {value!r}; '
            "remove the label for a plain VM",
        )
    )
    return False


def _parse_annotation(raw: str, path: str, violations: list[Violation]) -> CCARequest | None:
    try:
        value = loads(raw, unique_members=True)
    except DuplicateMember as exc:
        violations.append(
            Violation(
                path,
                f"gives the member {exc.name!r} more than once; "
                "a JSON reader keeps only one of them (which one differs between readers), "
                "so give each parameter once",
            )
        )
        return None
    except NotJSONValue as exc:
        inner = exc.path if exc.path.startswith("[") else f".{exc.path}"
        violations.append(Violation(f"{path}{inner}" if exc.path else path, exc.problem))
        return None
    except UnreadableJSON as exc:
        violations.append(
            Violation(
                path,
                f"is not valid JSON ({exc.reason}); expected an object such as "
                f'{{"{MEASUREMENT_ALGO_KEY}": "sha256"}}',
            )
        )
        return None
    return _parse_struct(value, path, violations)


def _parse_struct(value: Any, path: str, violations: list[Violation]) -> CCARequest | None:
    if not isinstance(value, Mapping):
        violations.append(
            Violation(
                path, f"expected a JSON object with keys {_keys_text()}, got {_json_type(value)}"
            )
        )
        return None
    before = len(violations)
    for key in value:
        if key not in CCA_PARAMETER_KEYS:
            violations.append(
                Violation(f"{path}.{key}", f"unknown key; the allowed keys are {_keys_text()}")
            )
    algo = _parse_algo(value, path, violations)
    log = _parse_log(value, path, violations)
    rpv = _parse_rpv(value, path, violations)
    if len(violations) > before:
        return None
    return CCARequest(measurement_algo=algo, measurement_log=log, personalization_value=rpv)


def _parse_algo(
    value: Mapping[str, Any], path: str, violations: list[Violation]
) -> MeasurementAlgo | None:
    if MEASUREMENT_ALGO_KEY not in value:
        return None
    algo = value[MEASUREMENT_ALGO_KEY]
    if isinstance(algo, str) and algo in MEASUREMENT_ALGORITHMS:
        return cast(MeasurementAlgo, algo)
    quoted = [f'"{a}"' for a in MEASUREMENT_ALGORITHMS]
    allowed = f"one of {', '.join(quoted)}"
    shown = repr(algo) if isinstance(algo, str) else _json_type(algo)
    violations.append(
        Violation(
            f"{path}.{MEASUREMENT_ALGO_KEY}", f"unsupported value {shown}; expected {allowed}"
        )
    )
    return None


def _parse_log(value: Mapping[str, Any], path: str, violations: list[Violation]) -> bool | None:
    if MEASUREMENT_LOG_KEY not in value:
        return None
    log = value[MEASUREMENT_LOG_KEY]
    if isinstance(log, bool):
        return log
    if isinstance(log, str) and log in _LOG_WORDS:
        return _LOG_WORDS[log]
    shown = repr(log) if isinstance(log, str) else _json_type(log)
    violations.append(
        Violation(
            f"{path}.{MEASUREMENT_LOG_KEY}",
            f'expected true or false ("yes" and "no" are accepted too), got {shown}',
        )
    )
    return None


def _parse_rpv(value: Mapping[str, Any], path: str, violations: list[Violation]) -> str | None:
    if PERSONALIZATION_VALUE_KEY not in value:
        return None
    rpv = value[PERSONALIZATION_VALUE_KEY]
    field = f"{path}.{PERSONALIZATION_VALUE_KEY}"
    expected = f"standard base64 of exactly {PERSONALIZATION_VALUE_BYTES} bytes"
    if not isinstance(rpv, str):
        violations.append(Violation(field, f"expected {expected}, got {_json_type(rpv)}"))
        return None
    try:
        raw = base64.b64decode(rpv.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        violations.append(Violation(field, f"is not valid base64; expected {expected}"))
        return None
    if len(raw) != PERSONALIZATION_VALUE_BYTES:
        violations.append(
            Violation(
                field,
                f"decodes to {len(raw)} bytes; expected {expected}{hex_hint(rpv)}",
            )
        )
        return None
    # Canonical form: what the bytes encode to, so equal values compare equal.
    return base64.b64encode(raw).decode("ascii")


_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def hex_hint(text: str) -> str:
    """For a personalization value given as the hex of 64 bytes instead of their base64: a
    sentence saying so, with the base64 to give instead; ``""`` for anything else."""
    digits = text.strip()
    if len(digits) != 2 * PERSONALIZATION_VALUE_BYTES or not set(digits) <= _HEX_DIGITS:
        return ""
    encoded = base64.b64encode(bytes.fromhex(digits)).decode("ascii")
    return (
        f"; it looks like hex ({len(digits)} hex digits are {PERSONALIZATION_VALUE_BYTES} bytes): "
        f"their base64 is {encoded}"
    )


def _parse_native(template: Template, violations: list[Violation]) -> CCARequest | None:
    domain = template.spec.get("domain")
    if not isinstance(domain, Mapping):
        return None
    launch_security = domain.get("launchSecurity")
    if not isinstance(launch_security, Mapping) or "cca" not in launch_security:
        return None
    path = template.path("spec", "domain", "launchSecurity", "cca")
    cca = launch_security["cca"]
    if cca is None:
        cca = {}
    return _parse_struct(cca, path, violations)


def native_form_advice(manifest: str | None = None) -> str:
    """How to write VEP 129's native form on stock KubeVirt: one wording for every reader."""
    where = (
        f"'kubevirt-cca convert {manifest}'"
        if manifest
        else ("'kubevirt-cca convert' on the manifest you applied")
    )
    return (
        f'Write the request as the label {ENABLED_LABEL}: "{ENABLED_VALUE}" plus the annotation '
        f"{LAUNCH_SECURITY_ANNOTATION} (VEP 129's CCA struct as JSON): run {where}"
    )


def _check_other_launch_security(template: Template, violations: list[Violation]) -> None:
    domain = template.spec.get("domain")
    if not isinstance(domain, Mapping):
        return
    launch_security = domain.get("launchSecurity")
    if launch_security is None:
        return
    path = template.path("spec", "domain", "launchSecurity")
    if not isinstance(launch_security, Mapping):
        violations.append(Violation(path, "expected an object"))
        return
    if not launch_security:
        violations.append(
            Violation(
                path,
                f"is empty: the API server dropped cca from VEP 129's native form {path}.cca "
                "(stock KubeVirt has no such field, and a client without strict field validation, "
                "such as kubectl --validate=false, lets it be pruned silently), "
                "so the Realm's parameters are gone. Remove launchSecurity. "
                + native_form_advice(),
            )
        )
        return
    for other in launch_security:
        if other != "cca":
            violations.append(
                Violation(
                    f"{path}.{other}",
                    f"a CCA Realm cannot also use {other} launch security; remove it, "
                    f"or remove the label {ENABLED_LABEL} for a non-CCA VM",
                )
            )


def _keys_text() -> str:
    return ", ".join(CCA_PARAMETER_KEYS)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__
