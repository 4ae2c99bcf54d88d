"""RFC 6902 JSON patch operations, built against the object the API server sent.

Each ``add`` targets a member whose parent exists in that object, or one created by an earlier
operation of the same patch, so the patch applies cleanly in order.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from kubevirt_cca.core.wire.json_patch import PatchOperation, add, pointer, replace, segments

__all__ = ["PatchOperation", "add", "apply", "pointer", "replace"]


def apply(obj: Any, operations: Sequence[PatchOperation]) -> Any:
    """``obj`` with our ``add`` / ``replace`` operations applied (a copy; for the offline tools).

    Only what :mod:`~kubevirt_cca.core.admission.mutate` emits is supported: members of
    objects, addressed by pointers whose parents exist.
    """
    result = copy.deepcopy(obj)
    for operation in operations:
        parts = segments(operation["path"])
        node = result
        for part in parts[:-1]:
            node = node[part]
        if operation["op"] == "replace" and parts[-1] not in node:
            raise KeyError(operation["path"])
        node[parts[-1]] = copy.deepcopy(operation["value"])
    return result
