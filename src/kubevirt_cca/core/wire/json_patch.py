"""RFC 6902 JSON patch operations and RFC 6901 pointers: the one definition of both.

Admission (``admission/patches.py``) and the labeller (``node/labelling.py``) build their patches
with the builders below (:func:`guard` makes a ``test`` operation; :func:`add`,
:func:`replace`, :func:`remove`), each addressed by its unescaped path parts; each emits only
the operations it needs.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, Literal, NotRequired, TypedDict


class PatchOperation(TypedDict):
    """One RFC 6902 operation (``remove`` carries no value)."""

    op: Literal["test", "add", "replace", "remove"]
    path: str
    value: NotRequired[Any]


def escape(segment: str) -> str:
    """A map key as one JSON pointer segment (RFC 6901: ``~`` -> ``~0``, ``/`` -> ``~1``)."""
    return segment.replace("~", "~0").replace("/", "~1")


def unescape(segment: str) -> str:
    """The map key one JSON pointer segment names (the inverse of :func:`escape`)."""
    return segment.replace("~1", "/").replace("~0", "~")


def pointer(parts: Sequence[str]) -> str:
    """An RFC 6901 JSON pointer to ``parts`` (each escaped)."""
    return _pointer(tuple(parts))


@functools.lru_cache(maxsize=256)
def _pointer(parts: tuple[str, ...]) -> str:
    # Admission asks for the same handful of paths on every review: cache them.
    return "".join("/" + escape(p) for p in parts)


def segments(path: str) -> list[str]:
    """The unescaped map keys of an RFC 6901 pointer (``""`` is the whole document)."""
    return [unescape(p) for p in path.split("/")[1:]]


def guard(parts: Sequence[str], value: Any) -> PatchOperation:
    """Fail the whole patch unless the value at ``parts`` equals ``value`` (a guard)."""
    return {"op": "test", "path": pointer(parts), "value": value}


def add(parts: Sequence[str], value: Any) -> PatchOperation:
    return {"op": "add", "path": pointer(parts), "value": value}


def replace(parts: Sequence[str], value: Any) -> PatchOperation:
    return {"op": "replace", "path": pointer(parts), "value": value}


def remove(parts: Sequence[str]) -> PatchOperation:
    return {"op": "remove", "path": pointer(parts)}
