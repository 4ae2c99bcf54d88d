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
    _refuse_bignums(value, what)
    return value


# CBOR's own integers fit in 64 bits plus a sign; larger ones are bignums (tags 2 and 3). No
# claim of an Arm CCA token is one, and a number of thousands of digits is only trouble
# downstream (printing it, or writing it as JSON, is refused by Python past 4300 digits).
_INT_MIN, _INT_MAX = -(2**64), 2**64 - 1


def _refuse_bignums(value: Any, what: str) -> None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, int) and not isinstance(item, bool):
            if not _INT_MIN <= item <= _INT_MAX:
                raise AttestationError(
                    f"{what} holds an integer of {item.bit_length()} bits (a CBOR bignum); "
                    "an Arm CCA token has no integer wider than 64 bits"
                )
        elif isinstance(item, Mapping):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, cbor2.CBORTag):
            stack.append(item.value)


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
