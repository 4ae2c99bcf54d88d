"""Reading ``hooks.kubevirt.io/hookSidecars`` and recognising kubevirt-cca's entry in it.

Shared by admission (which writes our entry, ``core/admission/sidecar.py``) and the hook (which
refuses a VMI that kept our entry after its label was removed), so both recognise it alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubevirt_cca.constants import HOOK_COMMAND, HOOK_SIDECARS_ANNOTATION
from kubevirt_cca.core.jsontext import UnreadableJSON, loads
from kubevirt_cca.errors import Violation

SIDECARS_FIELD = f"metadata.annotations[{HOOK_SIDECARS_ANNOTATION}]"


def looks_like_ours(entry: Any, image: str | None = None) -> bool:
    """An entry whose args start with ``hook`` (and, when given, whose image is ``image``)."""
    if not isinstance(entry, Mapping):
        return False
    args = entry.get("args")
    if not isinstance(args, list) or not args or args[0] != HOOK_COMMAND:
        return False
    return image is None or entry.get("image") == image


@dataclass(frozen=True)
class SidecarList:
    """The parsed annotation: its entries, or the violations that kept it from parsing."""

    entries: tuple[Any, ...]
    violations: tuple[Violation, ...] = ()


def parse_sidecars(annotations: Mapping[str, Any], prefix: str = "") -> SidecarList:
    """The entries of ``hooks.kubevirt.io/hookSidecars`` (absent: none)."""
    field = f"{prefix}.{SIDECARS_FIELD}" if prefix else SIDECARS_FIELD
    raw = annotations.get(HOOK_SIDECARS_ANNOTATION)
    if raw is None:
        return SidecarList(())
    if not isinstance(raw, str):
        return SidecarList((), (Violation(field, "expected a string holding a JSON list"),))
    if not raw.strip():
        return SidecarList(())
    try:
        value = loads(raw)
    except UnreadableJSON:
        return SidecarList(
            (),
            (
                Violation(
                    field,
                    "is not valid JSON; KubeVirt expects a JSON list of sidecar objects "
                    'such as [{"image": "...", "args": [...]}]',
                ),
            ),
        )
    if not isinstance(value, list) or not all(isinstance(e, Mapping) for e in value):
        return SidecarList(
            (), (Violation(field, "expected a JSON list of sidecar objects, as KubeVirt reads it"),)
        )
    return SidecarList(tuple(value))
