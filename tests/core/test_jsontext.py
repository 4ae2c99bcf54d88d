"""The one JSON reader (issue 21 item 7): JSON values read as Python's ``json`` reads them;
anything else, whatever the text, is an :class:`UnreadableJSON` (never another exception),
and a number JSON cannot carry is refused at the path it sits at."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubevirt_cca.core.wire.jsontext import (
    MAX_INT_DIGITS,
    DuplicateMember,
    NestedTooDeeply,
    NotJSONValue,
    UnreadableJSON,
    check_values,
    loads,
)

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=25,
)
KEYS = st.from_regex(r"\A[a-z][a-zA-Z0-9]{0,8}\Z")


@given(value=JSON)
def test_json_values_read_as_python_reads_them(value: Any) -> None:
    text = json.dumps(value)
    assert loads(text) == json.loads(text)
    assert loads(text.encode()) == json.loads(text)


@given(text=st.text(max_size=200) | st.binary(max_size=200))
def test_any_text_is_a_value_or_an_unreadable_json(text: str | bytes) -> None:
    try:
        loads(text)
    except UnreadableJSON as exc:
        assert exc.reason


@given(
    path=st.lists(st.one_of(KEYS, st.integers(0, 3)), max_size=6),
    digits=st.integers(MAX_INT_DIGITS + 1, MAX_INT_DIGITS + 3000),
    negative=st.booleans(),
)
def test_a_long_integer_is_refused_at_its_path(
    path: list[str | int], digits: int, negative: bool
) -> None:
    number = ("-" if negative else "") + "7" * digits
    text, expected = number, ""
    for step in reversed(path):
        if isinstance(step, int):
            text = "[" + "0, " * step + text + "]"
        else:
            text = json.dumps({step: None}).replace("null", text)
    for step in path:
        expected += f"[{step}]" if isinstance(step, int) else (f".{step}" if expected else step)
    with pytest.raises(NotJSONValue) as caught:
        loads(text)
    assert caught.value.path == expected
    assert caught.value.problem.startswith(f"an integer of {digits} digits is too long")


def test_the_longest_integer_is_read() -> None:
    assert loads("9" * MAX_INT_DIGITS) == int("9" * MAX_INT_DIGITS)
    assert loads("[-" + "9" * MAX_INT_DIGITS + "]") == [-int("9" * MAX_INT_DIGITS)]
    assert loads('{"a": ' + "1" * MAX_INT_DIGITS + "}", unique_members=True) == {
        "a": int("1" * MAX_INT_DIGITS)
    }


@pytest.mark.parametrize(
    ("text", "shown"),
    [("NaN", "NaN"), ("Infinity", "+Inf"), ("-Infinity", "-Inf"), ("1e400", "+Inf")],
)
def test_nan_and_infinities_are_not_json(text: str, shown: str) -> None:
    with pytest.raises(NotJSONValue) as caught:
        loads('{"a": {"b": [' + text + "]}}")
    assert caught.value.path == "a.b[0]"
    assert caught.value.problem.startswith(f"{shown} is not a number JSON can hold")


def test_odd_keys_are_bracketed() -> None:
    with pytest.raises(NotJSONValue) as caught:
        loads('{"metadata": {"annotations": {"cca.kubevirt.io/x": NaN}}}')
    assert caught.value.path == "metadata.annotations[cca.kubevirt.io/x]"


def test_duplicate_members_only_when_asked() -> None:
    assert loads('{"a": 1, "a": 2}') == {"a": 2}
    with pytest.raises(DuplicateMember) as caught:
        loads('{"x": {"a": 1, "a": 2}}', unique_members=True)
    assert caught.value.name == "a"


def test_depth_is_an_unreadable_json_and_the_walk_needs_no_recursion() -> None:
    with pytest.raises(NestedTooDeeply):
        loads("[" * 100_000 + "]" * 100_000)
    deep: Any = float("nan")
    for _ in range(50_000):
        deep = [deep]
    with pytest.raises(NotJSONValue) as caught:
        check_values(deep)
    assert caught.value.path == "[0]" * 50_000
