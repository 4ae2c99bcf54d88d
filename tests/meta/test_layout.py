"""The tree says what each module does: outside ``cli/`` (one module per subcommand, named after
it) no two modules share a name, so a name found in a traceback, a log line or a grep is one
file (issue 24: three ``plugin.py`` and three ``labeller.py`` once did different things)."""

from __future__ import annotations

import argparse
from collections import defaultdict

from kubevirt_cca.cli import build_parser
from tests.conftest import ROOT

PACKAGE = ROOT / "src" / "kubevirt_cca"


def test_no_two_modules_outside_cli_share_a_name() -> None:
    by_name: defaultdict[str, list[str]] = defaultdict(list)
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] in ("cli", "hookproto") or path.name == "__init__.py":
            continue
        by_name[path.name].append(str(relative))
    shared = {name: paths for name, paths in by_name.items() if len(paths) > 1}
    assert not shared, shared


def test_every_cli_module_is_named_after_its_subcommand() -> None:
    parser = build_parser()
    (subcommands,) = (
        action for action in parser._actions if isinstance(action, argparse._SubParsersAction)
    )
    commands = {name.replace("-", "_") for name in subcommands.choices}
    stray = [
        path.name
        for path in (PACKAGE / "cli").glob("*.py")
        if path.stem not in ("__init__", "common")
        and path.stem not in commands
        and path.stem.split("_")[0] not in commands
    ]
    assert not stray, f"cli modules that are no subcommand: {stray}"
