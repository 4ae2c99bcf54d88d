"""Reading a Kubernetes object's metadata, as JSON from the API server or a manifest.

The object is input: a missing or malformed ``metadata`` (or labels, annotations) reads as
empty, never as an exception; a value that is not a string reads as ``""``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_EMPTY: Mapping[str, Any] = {}


def is_object(value: Any) -> bool:
    """Whether ``value`` is a JSON object. JSON objects are dicts: testing that first saves the
    abstract Mapping check, which costs several times more (issue 16 item 8)."""
    return type(value) is dict or isinstance(value, Mapping)


def dig(obj: Any, *path: str) -> Any:
    """``obj[path[0]][path[1]]...``, or ``None`` where a step is missing or not a JSON object.

    The one walker of JSON paths: JSON from the API server or a manifest is input, so a wrong
    shape anywhere reads as absent, never as an exception.
    """
    for key in path:
        if not is_object(obj):
            return None
        obj = obj.get(key)
    return obj


def metadata_of(obj: Any) -> Mapping[str, Any]:
    """``obj.metadata`` when ``obj`` and it are JSON objects, else an empty mapping."""
    meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    return meta if isinstance(meta, Mapping) else _EMPTY


def meta_str(obj: Any, key: str) -> str:
    """``obj.metadata[key]`` (``name``, ``namespace``, ...) when it is a string, else ``""``."""
    value = metadata_of(obj).get(key)
    return value if isinstance(value, str) else ""


def labels_of(obj: Any) -> Mapping[str, Any]:
    """``obj.metadata.labels`` when it is a JSON object, else an empty mapping."""
    return _section(obj, "labels")


def annotations_of(obj: Any) -> Mapping[str, Any]:
    """``obj.metadata.annotations`` when it is a JSON object, else an empty mapping."""
    return _section(obj, "annotations")


def _section(obj: Any, section: str) -> Mapping[str, Any]:
    values = metadata_of(obj).get(section)
    return values if isinstance(values, Mapping) else _EMPTY
