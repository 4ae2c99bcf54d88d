"""Reading JSON text, and checking parsed values are JSON, the one way every reader does it.

Python's ``json`` module accepts more than JSON and less than Python holds: it reads ``NaN``
and ``Infinity`` (not JSON; Kubernetes and kubectl refuse them), reads ``1e400`` as an
infinity, and raises a bare ``ValueError`` for an integer of more than 4,300 digits (Python's
int/str conversion limit), which no caller expected. A YAML reader can produce the same values
(``.nan``, ``.inf``, a long integer) and integers no decimal text can print. Everything that
reads JSON or a manifest goes through here, so each such value is refused with the field it
sits at, as an :class:`UnreadableJSON` (a ``ValueError``), never a traceback.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_INT_DIGITS = 4300
"""The longest integer read: Python's default int/str conversion limit (digits)."""
# Integers of more bits than this have more than MAX_INT_DIGITS decimal digits.
_MAX_INT_BITS = math.floor(MAX_INT_DIGITS * math.log2(10))


class UnreadableJSON(ValueError):
    """JSON text that cannot be read, or a value that is not JSON.

    ``reason`` says why in a few words (a syntax error's message, or ``path: problem`` for a
    value); ``line`` and ``column`` locate a syntax error (0 when there is no position).
    """

    def __init__(self, reason: str, *, line: int = 0, column: int = 0) -> None:
        self.reason = reason
        self.line = line
        self.column = column
        super().__init__(reason)


class DuplicateMember(UnreadableJSON):
    """An object gives the member ``name`` twice (JSON readers disagree on which one counts)."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"the member {name!r} is given more than once")


class NestedTooDeeply(UnreadableJSON):
    """More levels of arrays and objects than Python's recursion limit lets a reader follow."""

    def __init__(self) -> None:
        super().__init__("nested too deeply")


class NotJSONValue(UnreadableJSON):
    """A number JSON cannot carry: ``path`` names the field, ``problem`` says what is wrong."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path or 'the top-level value'}: {problem}")


@dataclass(frozen=True)
class LongInteger:
    """Stands in for an integer too long to read, until :func:`check_values` names its field."""

    digits: int


def read_int(text: str) -> int | LongInteger:
    """A decimal integer's value, or a :class:`LongInteger` past :data:`MAX_INT_DIGITS`."""
    digits = len(text.lstrip("+-"))
    if digits > MAX_INT_DIGITS:
        return LongInteger(digits)
    try:
        return int(text)
    except ValueError:  # a lower limit set by PYTHONINTMAXSTRDIGITS
        return LongInteger(digits)


def checked_int(value: int) -> int | LongInteger:
    """``value`` itself, or a :class:`LongInteger` when its decimal text would be too long
    (a YAML hexadecimal, octal or binary integer can be)."""
    if value.bit_length() <= _MAX_INT_BITS:
        return value
    try:
        return value if len(str(value).lstrip("-")) <= MAX_INT_DIGITS else LongInteger(0)
    except ValueError:
        return LongInteger(0)


class _NotPlain(Exception):
    """Raised by the fast decoder's hooks: the text holds a number JSON cannot carry."""


def _plain_int(text: str) -> int:
    value = read_int(text)
    if isinstance(value, LongInteger):
        raise _NotPlain
    return value


def _plain_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotPlain
    return value


def _not_plain(_name: str) -> float:
    raise _NotPlain


def loads(text: str | bytes, *, unique_members: bool = False) -> Any:
    """The value of a JSON text; :class:`UnreadableJSON` when it is not JSON.

    With ``unique_members`` an object that gives a member twice is refused
    (:class:`DuplicateMember`); otherwise the last one counts, as in Python's ``json``.
    """
    fast, marked = (_FAST_UNIQUE, _MARKED_UNIQUE) if unique_members else (_FAST, _MARKED)
    try:
        if isinstance(text, bytes | bytearray):
            text = text.decode(json.detect_encoding(text), "surrogatepass")
        try:
            return fast.decode(text)
        except _NotPlain:
            value = marked.decode(text)
    except json.JSONDecodeError as exc:
        raise UnreadableJSON(exc.msg, line=exc.lineno, column=exc.colno) from None
    except UnicodeDecodeError:
        raise UnreadableJSON("not UTF-8 text") from None
    except RecursionError:
        raise NestedTooDeeply from None
    check_values(value)  # the fast reading met a number JSON cannot carry: name its field
    return value


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for name, value in pairs:
        if name in seen:
            raise DuplicateMember(name)
        seen[name] = value
    return seen


# Built once (json.loads builds a decoder per call when given hooks). The fast decoders refuse
# at the first odd number; only then is the text read again with markers, to name its field.
_FAST = json.JSONDecoder(parse_int=_plain_int, parse_float=_plain_float, parse_constant=_not_plain)
_FAST_UNIQUE = json.JSONDecoder(
    parse_int=_plain_int,
    parse_float=_plain_float,
    parse_constant=_not_plain,
    object_pairs_hook=_unique,
)
_MARKED = json.JSONDecoder(parse_int=read_int, parse_constant=float)
_MARKED_UNIQUE = json.JSONDecoder(
    parse_int=read_int, parse_constant=float, object_pairs_hook=_unique
)


def check_values(value: Any) -> None:
    """Refuse the first number in ``value`` that JSON cannot carry (:class:`NotJSONValue`):
    an integer too long to read, a NaN or an infinity. Mappings and lists are walked
    without recursion, so any depth a parser produced is fine."""
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, Mapping):
            stack.extend((_member(path, key), child) for key, child in reversed(list(item.items())))
        elif isinstance(item, list | tuple):
            indexed = list(enumerate(item))
            stack.extend((f"{path}[{index}]", child) for index, child in reversed(indexed))
        elif isinstance(item, LongInteger):
            size = f"an integer of {item.digits} digits" if item.digits else "an integer"
            raise NotJSONValue(
                path,
                f"{size} is too long to read (at most {MAX_INT_DIGITS} digits; "
                "Kubernetes integers are 64-bit)",
            )
        elif isinstance(item, float) and not math.isfinite(item):
            shown = "NaN" if math.isnan(item) else ("+Inf" if item > 0 else "-Inf")
            raise NotJSONValue(
                path,
                f"{shown} is not a number JSON can hold (kubectl refuses it too: 'json: "
                f"unsupported value: {shown}'); give a finite number",
            )


_PLAIN_KEY = re.compile(r"\A[A-Za-z_][A-Za-z0-9_-]*\Z")


def _member(path: str, key: Any) -> str:
    name = str(key)
    if _PLAIN_KEY.match(name):
        return f"{path}.{name}" if path else name
    return f"{path}[{name}]"
