"""Reading ``hooks.kubevirt.io/hookSidecars`` and recognising kubevirt-cca's entry in it.

Shared by admission (which writes our entry, ``core/admission/sidecar_entry.py``) and the hook
(which refuses a VMI that kept our entry after its label was removed, and a CCA VMI that lists
any sidecar beside ours), so both recognise it alike and say why in the same words.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubevirt_cca.constants import HOOK_COMMAND, HOOK_SIDECARS_ANNOTATION
from kubevirt_cca.core.wire.jsontext import UnreadableJSON, loads
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


ONLY_OUR_SIDECAR = (
    "a CCA VMI runs no hook sidecar but kubevirt-cca's: "
    "KubeVirt calls sidecars in the order it finds their sockets, not in the list's order, "
    "and skips a socket named like one it already has, "
    "so another sidecar could undo the Realm and the VM would run as a plain VM"
)
"""Why (issue 21): KubeVirt's hook manager reads the per-sidecar socket directories in name
order (``hook-sidecar-10`` before ``hook-sidecar-2``) and de-duplicates sockets by file name."""


def describe_entries(entries: Sequence[Any]) -> str:
    """``N hook sidecar entries (image 'a', configMap 'b')``, for messages."""
    noun = "entry" if len(entries) == 1 else "entries"
    names = ", ".join(sorted({_entry_name(entry) for entry in entries}))
    return f"{len(entries)} hook sidecar {noun} ({names})"


def _entry_name(entry: Any) -> str:
    """How a message names a sidecar entry: its image, or the ConfigMap of a script sidecar."""
    if isinstance(entry, Mapping):
        if isinstance(entry.get("image"), str):
            return f"image {_shown(entry['image'])}"
        config = entry.get("configMap")
        if isinstance(config, Mapping) and isinstance(config.get("name"), str):
            return f"configMap {_shown(config['name'])}"
    return _shown(entry)


def _shown(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."
