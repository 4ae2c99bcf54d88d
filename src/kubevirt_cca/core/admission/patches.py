"""RFC 6902 JSON patch operations, built against the object the API server sent.

Each ``add`` targets a member whose parent exists in that object, or one created by an earlier
operation of the same patch, so the patch applies cleanly in order.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence
from typing import Any, Literal, TypedDict


class PatchOperation(TypedDict):
    op: Literal["add", "replace"]
    path: str
    value: Any


def pointer(parts: Sequence[str]) -> str:
    """An RFC 6901 JSON pointer (``~`` and ``/`` escaped)."""
    return _pointer(tuple(parts))


@functools.lru_cache(maxsize=256)
def _pointer(parts: tuple[str, ...]) -> str:
    # Admission asks for the same handful of paths on every review: cache them.
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def add(parts: Sequence[str], value: Any) -> PatchOperation:
    return {"op": "add", "path": _pointer(tuple(parts)), "value": value}


def replace(parts: Sequence[str], value: Any) -> PatchOperation:
    return {"op": "replace", "path": _pointer(tuple(parts)), "value": value}


def apply(obj: Any, operations: Sequence[PatchOperation]) -> Any:
    """``obj`` with our ``add`` / ``replace`` operations applied (a copy; for the offline tools).

    Only what :mod:`~kubevirt_cca.core.admission.mutate` emits is supported: members of
    objects, addressed by pointers whose parents exist.
    """
    result = copy.deepcopy(obj)
    for operation in operations:
        parts = [p.replace("~1", "/").replace("~0", "~")
                 for p in operation["path"].split("/")[1:]]
        node = result
        for part in parts[:-1]:
            node = node[part]
        if operation["op"] == "replace" and parts[-1] not in node:
            raise KeyError(operation["path"])
        node[parts[-1]] = copy.deepcopy(operation["value"])
    return result
