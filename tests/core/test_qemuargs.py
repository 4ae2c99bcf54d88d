"""Foreign QEMU arguments (core/domain/qemuargs.py): refused in every dialect, harmless kept, ours
last."""

from __future__ import annotations

import base64
from itertools import pairwise, product

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubevirt_cca.core.cluster.settings import Dialect, Settings
from kubevirt_cca.core.domain.qemuargs import parse_opts
from kubevirt_cca.core.domain.rewrite import rewrite_domain
from kubevirt_cca.core.vmi.request import CCARequest
from kubevirt_cca.errors import DomainError
from tests.core.qemu_cases import (
    HARMLESS_ARGUMENTS,
    REFUSED_ARGUMENTS,
    REFUSED_ELEMENTS,
    commandline_values,
    with_commandlines,
    with_element,
)
from tests.core.rewrite_support import own_domains

DOMAIN = own_domains()["kernel-boot-bare"]
RPV = base64.b64encode(bytes(range(64))).decode()
FULL = CCARequest(measurement_algo="sha256", measurement_log=True, personalization_value=RPV)
OURS = [
    "-object",
    f"rme-guest,id=rme0,measurement-algorithm=sha256,personalization-value={RPV},"
    "measurement-log=on",
    "-machine",
    "confidential-guest-support=rme0",
]
DIALECTS = list(Dialect)


def rewrite(xml: str, dialect: Dialect, request: CCARequest = FULL) -> str:
    return rewrite_domain(xml, request, Settings(dialect=dialect))


def refusal(xml: str, dialect: Dialect) -> str:
    with pytest.raises(DomainError) as caught:
        rewrite(xml, dialect)
    message = str(caught.value)
    assert message.startswith("the domain carries what kubevirt-cca does not pass to a Realm")
    assert "docs/rewrite.md#foreign-qemu-arguments" in message
    return message


@pytest.mark.parametrize(
    ("case", "dialect"),
    list(product(REFUSED_ARGUMENTS, DIALECTS)),
    ids=[f"{c}-{d.value}" for c, d in product(REFUSED_ARGUMENTS, DIALECTS)],
)
def test_a_foreign_argument_is_refused_in_every_dialect(case: str, dialect: Dialect) -> None:
    values, named = REFUSED_ARGUMENTS[case]
    message = refusal(with_commandlines(DOMAIN, values), dialect)
    assert named in message


@pytest.mark.parametrize("case", list(REFUSED_ARGUMENTS))
def test_a_foreign_argument_after_ours_or_in_a_second_block_is_refused(case: str) -> None:
    """Where a block sits does not matter: after a rewrite, in its own block, or in ours."""
    values, named = REFUSED_ARGUMENTS[case]
    once = rewrite(DOMAIN, Dialect.QEMU_COMMANDLINE)
    assert named in refusal(with_commandlines(once, values), Dialect.QEMU_COMMANDLINE)
    merged = commandline_values(once)[0] + list(values)
    assert named in refusal(with_commandlines(DOMAIN, merged), Dialect.QEMU_COMMANDLINE)


@pytest.mark.parametrize(
    ("case", "dialect"),
    list(product(REFUSED_ELEMENTS, DIALECTS)),
    ids=[f"{c}-{d.value}" for c, d in product(REFUSED_ELEMENTS, DIALECTS)],
)
def test_a_foreign_qemu_element_is_refused_in_every_dialect(case: str, dialect: Dialect) -> None:
    element, named = REFUSED_ELEMENTS[case]
    message = refusal(with_element(DOMAIN, element), dialect)
    assert named in message


def test_a_commandline_nested_elsewhere_is_refused() -> None:
    """libvirt reads <qemu:commandline> directly under <domain> only; one elsewhere is refused,
    once (not once more for each of its arguments)."""
    xml = DOMAIN.replace(
        "<devices>",
        '<devices><qemu:commandline xmlns:qemu="http://libvirt.org/schemas/domain/qemu/1.0">'
        '<qemu:arg value="-cpu"/><qemu:arg value="max"/></qemu:commandline>',
        1,
    )
    message = refusal(xml, Dialect.VEP)
    assert "<qemu:commandline> is not where libvirt reads it" in message
    assert "qemu:arg" not in message


def test_every_refused_argument_is_named_at_once() -> None:
    values = [*REFUSED_ARGUMENTS["accel-tcg"][0], *REFUSED_ARGUMENTS["cpu-max"][0]]
    message = refusal(with_commandlines(DOMAIN, values), Dialect.VEP)
    assert "'-accel tcg' chooses the accelerator" in message
    assert "'-cpu max' chooses the CPU model" in message


def test_an_unknown_option_ends_the_walk() -> None:
    """After an option of unknown arity nothing can be told apart; it alone is named."""
    message = refusal(with_commandlines(DOMAIN, ["-smp", "-cpu", "max"]), Dialect.VEP)
    assert "'-smp' is not on kubevirt-cca's list" in message
    assert "-cpu" not in message


def test_a_long_argument_is_cut_in_the_message() -> None:
    message = refusal(with_commandlines(DOMAIN, ["-cpu", "x" * 5000]), Dialect.VEP)
    assert len(message) < 1000 and "xxx..." in message


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.value)
def test_harmless_arguments_are_kept_in_order_and_ours_come_last(dialect: Dialect) -> None:
    blocks = list(HARMLESS_ARGUMENTS.values())
    out = rewrite(with_commandlines(DOMAIN, *blocks), dialect)
    kept = [value for block in blocks for value in block]
    expected = kept + OURS if dialect is Dialect.QEMU_COMMANDLINE else kept
    assert commandline_values(out) == [expected]
    assert rewrite(out, dialect) == out


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.value)
def test_an_argument_split_across_blocks_is_read_as_qemu_reads_it(dialect: Dialect) -> None:
    """libvirt appends every block's arguments in order, so a value may sit in the next block."""
    name, value = HARMLESS_ARGUMENTS["kubevirt-ignition"]
    out = rewrite(with_commandlines(DOMAIN, [name], [value]), dialect)
    assert commandline_values(out)[0][:2] == [name, value]
    cpu_flag, cpu_value = REFUSED_ARGUMENTS["cpu-max"][0]
    assert "'-cpu max'" in refusal(with_commandlines(DOMAIN, [cpu_flag], [cpu_value]), dialect)


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.value)
def test_our_own_arguments_with_other_properties_are_replaced(dialect: Dialect) -> None:
    """A stale rme-guest of ours (id rme0) from an earlier define gives way to the VMI's."""
    stale = ["-object", "rme-guest,id=rme0,measurement-algorithm=sha512", *OURS[2:]]
    out = rewrite(with_commandlines(DOMAIN, stale, stale), dialect)
    expected = [OURS] if dialect is Dialect.QEMU_COMMANDLINE else []
    assert commandline_values(out) == expected


# Pairs drawn for the property below, each labelled by hand: harmful or not.
_POOL: list[tuple[tuple[str, ...], bool]] = [
    *((values, True) for values, _ in REFUSED_ARGUMENTS.values()),
    *((values, False) for values in HARMLESS_ARGUMENTS.values()),
    ((OURS[0], "rme-guest,id=rme0"), False),
    (tuple(OURS[2:]), False),
]


@given(
    picks=st.lists(st.sampled_from(range(len(_POOL))), max_size=6),
    cuts=st.lists(st.integers(min_value=0, max_value=12), max_size=3),
    dialect=st.sampled_from(DIALECTS),
)
def test_refused_exactly_when_something_harmful_is_there(
    picks: list[int], cuts: list[int], dialect: Dialect
) -> None:
    """Any mix of pairs, cut into blocks anywhere: refused iff a harmful pair is in it;
    otherwise one block, the harmless values in order, ours (only) last."""
    values = [value for pick in picks for value in _POOL[pick][0]]
    bounds = sorted({0, len(values), *(c for c in cuts if c < len(values))})
    blocks = [values[a:b] for a, b in pairwise(bounds)]
    xml = with_commandlines(DOMAIN, *blocks)
    if any(_POOL[pick][1] for pick in picks):
        with pytest.raises(DomainError):
            rewrite(xml, dialect)
        return
    harmless = [
        value
        for pick in picks
        if _POOL[pick][0] in HARMLESS_ARGUMENTS.values()
        for value in _POOL[pick][0]
    ]
    ours = OURS if dialect is Dialect.QEMU_COMMANDLINE else []
    expected = [harmless + ours] if harmless + ours else []
    assert commandline_values(rewrite(xml, dialect)) == expected


@pytest.mark.parametrize(
    ("value", "implied", "items"),
    [
        (
            "virt,confidential-guest-support=a,,b",
            "type",
            [("type", "virt"), ("confidential-guest-support", "a,b")],
        ),
        ("type=virt,accel=tcg", "type", [("type", "virt"), ("accel", "tcg")]),
        ("rme-guest,id=rme0", "qom-type", [("qom-type", "rme-guest"), ("id", "rme0")]),
        ("opt/x,string=1,,2", "name", [("name", "opt/x"), ("string", "1,2")]),
        ("timestamp,noguest-name", None, [("timestamp", "on"), ("guest-name", "off")]),
        ("", "type", []),
    ],
)
def test_options_are_split_as_qemu_splits_them(
    value: str, implied: str | None, items: list[tuple[str, str]]
) -> None:
    assert parse_opts(value, implied=implied) == items
