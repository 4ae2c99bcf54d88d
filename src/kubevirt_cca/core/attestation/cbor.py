"""CBOR decoding for attestation inputs: one item, no duplicate keys, bounded nesting."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import cbor2

from kubevirt_cca.errors import AttestationError

MAX_CBOR_DEPTH = 16


def decode_cbor(data: bytes, what: str) -> Any:
    """Exactly one CBOR item (no trailing bytes, no duplicate map keys, bounded nesting)."""
    stream = io.BytesIO(data)
    decoder = cbor2.CBORDecoder(stream, max_depth=MAX_CBOR_DEPTH, allow_duplicate_keys=False)
    try:
        value = decoder.decode()
    except cbor2.CBORDecodeEOF as exc:
        raise AttestationError(f"{what} is not valid CBOR: it ends early ({exc})") from exc
    except cbor2.CBORDecodeError as exc:
        raise AttestationError(f"{what} is not valid CBOR: {exc}") from exc
    except RecursionError as exc:
        raise AttestationError(f"{what} is not valid CBOR: nested too deeply") from exc
    trailing = len(data) - stream.tell()
    if trailing > 0:
        raise AttestationError(f"{what} has {trailing} unexpected bytes after its CBOR item")
    return value


def cbor_map(value: Any, what: str) -> dict[Any, Any]:
    """A CBOR map as a dict whose integer keys are real integers (never booleans or floats)."""
    if not isinstance(value, Mapping):
        raise AttestationError(f"{what} must be a CBOR map, got {cbor_kind(value)}")
    out: dict[Any, Any] = {}
    for key, item in value.items():
        # In Python True == 1 and 10.0 == 10: keep such keys apart so they never match a claim.
        out[key if type(key) in (int, str) else ("non-integer key", repr(key))] = item
    return out


def cbor_kind(value: Any) -> str:
    """A CBOR type name for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, bytes):
        return "a byte string"
    if isinstance(value, str):
        return "a text string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, Mapping):
        return "a map"
    if isinstance(value, cbor2.CBORTag):
        return f"a value with CBOR tag {value.tag}"
    return f"a {type(value).__name__} value"
