"""Messages stay greppable: no continued literal in the package splits mid-phrase where the
clause would fit on one line (tests/meta/messages.py; docs/development.md, "Conventions")."""

from __future__ import annotations

import ast

from tests.conftest import ROOT
from tests.meta.messages import bad_splits, fix, groups

SOURCES = sorted(
    path for path in (ROOT / "src" / "kubevirt_cca").rglob("*.py") if "hookproto" not in path.parts
)


def test_no_message_in_the_package_is_split_mid_phrase() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{row}"
        for path in SOURCES
        for group in groups(path.read_text())
        for row in bad_splits(group)
    ]
    assert not found, f"split mid-phrase (python -m tests.meta.messages --fix FILE): {found}"


def test_a_mid_phrase_split_is_found_and_fixed_with_the_same_strings() -> None:
    source = (
        "def f(name: str) -> None:\n"
        "    raise ValueError(\n"
        '        f"the label {name} is not "\n'
        '        "a CCA label; expected kubevirt.io/cca"\n'
        "    )\n"
    )
    (group,) = groups(source)
    assert bad_splits(group) == [3]
    fixed = fix(source)
    assert ast.dump(ast.parse(fixed)) == ast.dump(ast.parse(source))
    assert '"the label {name} is not a CCA label; expected kubevirt.io/cca"' in fixed
    assert not any(bad_splits(g) for g in groups(fixed))


def test_a_split_at_a_clause_or_in_a_clause_too_long_for_a_line_is_allowed() -> None:
    long_clause = "word " * 30
    source = (
        "MESSAGE = (\n"
        '    "the webhook is not ready; "\n'
        '    "it retries "\n'
        '    "(every second)"\n'
        f'    "{long_clause[:80]}"\n'
        f'    "{long_clause[80:]}"\n'
        ")\n"
    )
    (group,) = groups(source)
    assert bad_splits(group) == []
