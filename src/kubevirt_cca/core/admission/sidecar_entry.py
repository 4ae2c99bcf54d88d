"""Our entry in ``hooks.kubevirt.io/hookSidecars`` and the annotation recording the decision.

KubeVirt starts one sidecar container per entry of the annotation's JSON list. Ours is::

    {"image": <hookImage>, "args": ["hook", "--dialect", D, "--firmware", F,
                                    "--virtio-iommu", "on"|"off"]}

(the image's entrypoint is ``kubevirt-cca``). We recognise it by ``args[0] == "hook"`` and the
configured image. In sidecar mode it is the only entry a CCA VMI may have (issue 21: KubeVirt's
hook manager calls sidecars in socket-discovery order and de-duplicates sockets by name, so any
other sidecar could run after ours or shadow it); in plugin mode the user's entries are kept.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from kubevirt_cca.constants import HOOK_COMMAND
from kubevirt_cca.core.cluster.settings import Settings
from kubevirt_cca.core.vmi.request import CCARequest
from kubevirt_cca.core.vmi.sidecars import (
    ONLY_OUR_SIDECAR,
    SIDECARS_FIELD,
    SidecarList,
    describe_entries,
    looks_like_ours,
    parse_sidecars,
)
from kubevirt_cca.core.wire.jsontext import UnreadableJSON, loads

__all__ = [
    "ONLY_OUR_SIDECAR",
    "SIDECARS_FIELD",
    "SidecarList",
    "describe_entries",
    "looks_like_ours",
    "parse_sidecars",
]

HookEntry = dict[str, Any]


def hook_entry(settings: Settings, image: str) -> HookEntry:
    """The sidecar entry that makes KubeVirt run our hook with these settings."""
    return {"image": image, "args": list(_hook_args(settings))}


@functools.lru_cache(maxsize=64)
def _hook_args(settings: Settings) -> tuple[str, ...]:
    # The same few settings on every review: build the argument list once per settings.
    return (
        HOOK_COMMAND,
        "--dialect",
        settings.dialect.value,
        "--firmware",
        settings.firmware,
        "--virtio-iommu",
        "on" if settings.virtio_iommu else "off",
    )


# One encoder for every compact rendering: ``json.dumps`` with ``separators`` builds a new
# encoder on each call (a few µs per review, issue 16 item 8).
_COMPACT = json.JSONEncoder(separators=(",", ":"))


def render_sidecars(entries: list[Any]) -> str:
    """The annotation value for ``entries`` (compact JSON, as KubeVirt writes it)."""
    return _COMPACT.encode(entries)


@functools.lru_cache(maxsize=64)
def rendered_hook_entry(settings: Settings, image: str) -> str:
    """``render_sidecars([hook_entry(settings, image)])``, rendered once per settings and image
    (admission writes it for every VMI without sidecars of its own)."""
    return render_sidecars([hook_entry(settings, image)])


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
        value = loads(raw)
    except UnreadableJSON:
        return None
    return value if isinstance(value, dict) else None
