"""Where kubevirt-cca's keys may sit, and every place a person could plausibly put them instead.

A request in the wrong place must be refused, never ignored (docs/security.md): our
label on a VM's own metadata instead of its VMI template's gives a plain VM without a word, and
a typo in a key (``cca.kubevirt.io/Enabled``, ``.../launchSecurity``) does the same. Admission
(the webhook and ``validate``), the hook and ``attest verify`` all ask :func:`misplaced_keys`,
so they refuse the same objects. The in-API-server policy
``deploy/policies/cca-keys-in-place.yaml`` repeats these rules for objects the webhooks never
see (tests compare the two).

The places, per kind (a path from the object's root to a ``metadata``):

- the VMI template's metadata (``TEMPLATE_PATHS``) is where the request belongs;
- the object's own metadata, and a pool's ``spec.virtualMachineTemplate.metadata``, are not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from kubevirt_cca.constants import (
    ENABLED_LABEL,
    ENABLED_VALUE,
    INTEGRATION_ANNOTATION,
    KEY_PREFIX,
    LAUNCH_SECURITY_ANNOTATION,
    NODE_ALGO_LABEL_PREFIX,
    NODE_DETECTION_ANNOTATION,
    NODE_HONOURS_OVERRIDE_ANNOTATION,
    RESOLVED_ANNOTATION,
)
from kubevirt_cca.core.wire.objects import dig, metadata_of
from kubevirt_cca.errors import Violation

Section = Literal["labels", "annotations"]
VMI_KIND = "VirtualMachineInstance"

# Where the VMI template sits in each kind kubevirt-cca reads: path from the object's root.
TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    VMI_KIND: (),
    "VirtualMachine": ("spec", "template"),
    "VirtualMachineInstanceReplicaSet": ("spec", "template"),
    "VirtualMachinePool": ("spec", "virtualMachineTemplate", "spec", "template"),
}

# Metadata that is not the VMI template's, so kubevirt-cca (and KubeVirt) never read a request
# there: the object's own, and the VM template of a pool.
WRONG_PLACES: dict[str, tuple[tuple[str, ...], ...]] = {
    VMI_KIND: (),
    "VirtualMachine": ((),),
    "VirtualMachineInstanceReplicaSet": ((),),
    "VirtualMachinePool": ((), ("spec", "virtualMachineTemplate")),
}

# Each key a VMI (template) may carry, and in which section.
KEY_SECTIONS: dict[str, Section] = {
    ENABLED_LABEL: "labels",
    LAUNCH_SECURITY_ANNOTATION: "annotations",
    RESOLVED_ANNOTATION: "annotations",
    INTEGRATION_ANNOTATION: "annotations",
}
# Keys kubevirt-cca writes itself (a person never needs to set them on a template).
WRITTEN_BY_ADMISSION = (RESOLVED_ANNOTATION, INTEGRATION_ANNOTATION)

_KIND_NAMES = {
    VMI_KIND: "VirtualMachineInstance's",
    "VirtualMachine": "VirtualMachine's own",
    "VirtualMachineInstanceReplicaSet": "VirtualMachineInstanceReplicaSet's own",
    "VirtualMachinePool": "VirtualMachinePool's own",
}


@dataclass(frozen=True)
class _Place:
    """One metadata block: its path prefix and whether it is the VMI template."""

    prefix: str
    metadata: Mapping[str, Any]
    is_template: bool
    description: str

    @property
    def asks_for_realm(self) -> bool:
        labels = self.metadata.get("labels")
        return isinstance(labels, Mapping) and labels.get(ENABLED_LABEL) == ENABLED_VALUE


def misplaced_keys(obj: Mapping[str, Any]) -> list[Violation]:
    """Every ``cca.kubevirt.io/`` key of ``obj`` that is not where kubevirt-cca reads it.

    Empty for an object whose kind kubevirt-cca does not read (the request parser reports
    those) and for an object with our keys only where they belong.
    """
    if not isinstance(obj, Mapping):
        return []
    kind = obj.get("kind", VMI_KIND)
    if kind not in TEMPLATE_PATHS:
        return []
    template_prefix = _dotted(TEMPLATE_PATHS[kind])
    violations: list[Violation] = []
    for place in _places(obj, str(kind)):
        for section in ("labels", "annotations"):
            values = place.metadata.get(section)
            if not isinstance(values, Mapping):
                continue
            for key in values:
                if not isinstance(key, str) or not _is_ours(key):
                    continue
                message = _judge(key, section, place, template_prefix)
                if message is not None:
                    violations.append(
                        Violation(_join(place.prefix, f"metadata.{section}[{key}]"), message)
                    )
    return violations


def key_fields(obj: Mapping[str, Any]) -> frozenset[str]:
    """The field paths of every ``cca.kubevirt.io/`` key of ``obj``, wherever it sits."""
    if not isinstance(obj, Mapping) or obj.get("kind", VMI_KIND) not in TEMPLATE_PATHS:
        return frozenset()
    fields: set[str] = set()
    for place in _places(obj, str(obj.get("kind", VMI_KIND))):
        for section in ("labels", "annotations"):
            values = place.metadata.get(section)
            if isinstance(values, Mapping):
                fields.update(
                    _join(place.prefix, f"metadata.{section}[{key}]")
                    for key in values
                    if isinstance(key, str) and _is_ours(key)
                )
    return frozenset(fields)


# --- the judgement -------------------------------------------------------------------------------


def _judge(key: str, section: Section, place: _Place, template_prefix: str) -> str | None:
    """Why ``key`` cannot be in ``section`` of ``place`` (``None``: it is fine there)."""
    belongs = KEY_SECTIONS.get(key)
    if belongs is None:
        return _unknown(key, section, template_prefix)
    where = _join(template_prefix, f"metadata.{belongs}")
    kind_word = "label" if belongs == "labels" else "annotation"
    if not place.is_template:
        if key in WRITTEN_BY_ADMISSION:
            return (
                f"{key} is written by kubevirt-cca on the VMI at admission; "
                f"found on the {place.description} metadata, where it means nothing; remove it"
            )
        return (
            f"{key} was found on the {place.description} metadata, where kubevirt-cca "
            "(and KubeVirt) never read it, so the VMI would start without it; "
            f"it belongs in the VMI template, as the {kind_word} {where}[{key}]"
        )
    if section != belongs:
        found = "label" if section == "labels" else "annotation"
        return (
            f"{key} is {_a(kind_word)}, found as {_a(found)}, where kubevirt-cca never reads it; "
            f"move it to {where}[{key}]"
        )
    if key in WRITTEN_BY_ADMISSION and not place.asks_for_realm:
        return (
            f"{key} is written by kubevirt-cca on CCA VMIs only, and this one does not ask "
            f'for a Realm (no label {ENABLED_LABEL}: "{ENABLED_VALUE}"); remove it, or '
            "add the label"
        )
    return None


def _unknown(key: str, section: Section, template_prefix: str) -> str:
    guess = _did_you_mean(key)
    if key.startswith(NODE_ALGO_LABEL_PREFIX) or key == NODE_DETECTION_ANNOTATION:
        hint = " (it is a node key, written by kubevirt-cca's node labeller)"
    elif key == NODE_HONOURS_OVERRIDE_ANNOTATION:
        hint = " (it is a node annotation the cluster admin sets; a VM cannot grant it)"
    elif guess is not None:
        guess_kind = "label" if KEY_SECTIONS[guess] == "labels" else "annotation"
        hint = f" (did you mean the {guess_kind} {guess}?)"
    else:
        hint = ""
    where = _join(template_prefix, "metadata")
    return (
        f"{key} is not a kubevirt-cca key{hint}; "
        f"a VM asks for a Realm with the label {ENABLED_LABEL} and, optionally, "
        f"the annotation {LAUNCH_SECURITY_ANNOTATION}, both in {where}. "
        f"Remove or correct the {section[:-1]}"
    )


def _a(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def _did_you_mean(key: str) -> str | None:
    wanted = _squash(key)
    for ours in KEY_SECTIONS:
        if _squash(ours) == wanted:
            return ours
    return None


def _squash(key: str) -> str:
    """A key without case and word separators: ``launchSecurity`` ~ ``launch-security``."""
    return "".join(ch for ch in key.lower() if ch not in "-_.")


def _is_ours(key: str) -> bool:
    # Annotation keys may have an upper-case prefix (the API server lower-cases them only to
    # validate), and an upper-case variant is still someone trying to talk to kubevirt-cca.
    return key.lower().startswith(KEY_PREFIX)


# --- walking the object --------------------------------------------------------------------------


def _places(obj: Mapping[str, Any], kind: str) -> list[_Place]:
    places: list[_Place] = []
    for path in WRONG_PLACES[kind]:
        node = _at(obj, path)
        if node is not None:
            description = (
                _KIND_NAMES[kind]
                if not path
                else "pool's VirtualMachine template (spec.virtualMachineTemplate)"
            )
            places.append(_Place(_dotted(path), metadata_of(node), False, description))
    node = _at(obj, TEMPLATE_PATHS[kind])
    if node is not None:
        places.append(
            _Place(_dotted(TEMPLATE_PATHS[kind]), metadata_of(node), True, "VMI template's")
        )
    return places


def _at(obj: Mapping[str, Any], path: tuple[str, ...]) -> Mapping[str, Any] | None:
    node = dig(obj, *path)
    return node if isinstance(node, Mapping) else None


def _dotted(path: tuple[str, ...]) -> str:
    return ".".join(path)


def _join(prefix: str, rest: str) -> str:
    return f"{prefix}.{rest}" if prefix else rest
