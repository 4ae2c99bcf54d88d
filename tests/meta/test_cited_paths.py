"""The code cites pages and files of this repository only: every ``docs/...``, ``tests/...``,
``benchmarks/...`` or ``core/...`` path a docstring or comment names exists, and none cites the
design notes outside the repository (``DESIGN.md``, ``STYLE.md``): their content lives in
``docs/``. (The benchmarks' input fixtures in ``../shared`` are data they read, not citations.)"""

from __future__ import annotations

import re

from tests.conftest import ROOT

_CITED = re.compile(
    r"(?<![\w/.-])((?:docs|benchmarks|tests|scripts|deploy|protos|core|adapters|cli)/[\w./-]*\w)"
)
_SOURCES = [
    path
    for pattern in ("src/kubevirt_cca/**/*.py", "benchmarks/*.py")
    for path in ROOT.glob(pattern)
    if "hookproto" not in path.parts
]
_NOT_PATHS = {"core/v1"}  # Kubernetes' core API group, not a file


def test_every_cited_path_exists() -> None:
    missing = []
    for source in _SOURCES:
        for number, line in enumerate(source.read_text().splitlines(), 1):
            for cited in _CITED.findall(line):
                cited = cited.rstrip(".")
                if cited in _NOT_PATHS:
                    continue
                if not any(
                    (base / cited).exists() for base in (ROOT, ROOT / "src" / "kubevirt_cca")
                ):
                    missing.append(f"{source.relative_to(ROOT)}:{number}: {cited}")
    assert not missing, missing


def test_no_citation_of_files_outside_the_repository() -> None:
    cited = [
        f"{source.relative_to(ROOT)}:{number}"
        for source in _SOURCES
        for number, line in enumerate(source.read_text().splitlines(), 1)
        if "DESIGN.md" in line or "STYLE.md" in line
    ]
    assert not cited, cited
