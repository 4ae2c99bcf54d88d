"""Our entry in ``hooks.kubevirt.io/hookSidecars`` and the annotation recording the decision.

KubeVirt starts one sidecar container per entry of the annotation's JSON list. Ours is::

    {"image": <hookImage>, "args": ["hook", "--dialect", D, "--firmware", F,
                                    "--virtio-iommu", "on"|"off"]}

(the image's entrypoint is ``kubevirt-cca``). We recognise it by ``args[0] == "hook"`` and the
configured image; every other entry is the user's and is kept as it was, in order.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubevirt_cca.constants import HOOK_COMMAND, HOOK_SIDECARS_ANNOTATION, RESOLVED_ANNOTATION
from kubevirt_cca.core.request import CCARequest
from kubevirt_cca.core.settings import Settings
from kubevirt_cca.errors import Violation

HookEntry = dict[str, Any]

SIDECARS_FIELD = f"metadata.annotations[{HOOK_SIDECARS_ANNOTATION}]"
RESOLVED_FIELD = f"metadata.annotations[{RESOLVED_ANNOTATION}]"


def hook_entry(settings: Settings, image: str) -> HookEntry:
    """The sidecar entry that makes KubeVirt run our hook with these settings."""
    return {"image": image, "args": list(_hook_args(settings))}


@functools.lru_cache(maxsize=64)
def _hook_args(settings: Settings) -> tuple[str, ...]:
    # The same few settings on every review: build the argument list once per settings.
    return (
        HOOK_COMMAND,
        "--dialect", settings.dialect.value,
        "--firmware", settings.firmware,
        "--virtio-iommu", "on" if settings.virtio_iommu else "off",
    )


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
        value = json.loads(raw)
    except (json.JSONDecodeError, RecursionError):
        return SidecarList((), (Violation(
            field, "is not valid JSON; KubeVirt expects a JSON list of sidecar objects "
            'such as [{"image": "...", "args": [...]}]'),))
    if not isinstance(value, list) or not all(isinstance(e, Mapping) for e in value):
        return SidecarList((), (Violation(
            field, "expected a JSON list of sidecar objects, as KubeVirt reads it"),))
    return SidecarList(tuple(value))


def render_sidecars(entries: list[Any]) -> str:
    """The annotation value for ``entries`` (compact JSON, as KubeVirt writes it)."""
    return json.dumps(entries, separators=(",", ":"))


def resolved_record(request: CCARequest, settings: Settings) -> dict[str, Any]:
    """What admission decided: parameters, dialect, firmware and virtio IOMMU policy."""
    chosen = settings.to_json()
    return {
        "parameters": request.to_json(),
        "dialect": chosen["dialect"],
        "firmware": chosen["firmware"],
        "virtioIOMMU": chosen["virtioIOMMU"],
    }


@functools.lru_cache(maxsize=256)
def render_resolved(request: CCARequest, settings: Settings) -> str:
    """The resolved annotation's value (sorted keys, so equal decisions are equal strings)."""
    return json.dumps(resolved_record(request, settings), sort_keys=True, separators=(",", ":"))


def parse_resolved(raw: Any) -> dict[str, Any] | None:
    """The resolved record, or ``None`` when the annotation is not one."""
    if not isinstance(raw, str):
        return None
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None
