"""Where a message written over several source lines may be split (docs/development.md).

A user who saw a message greps for a few of its words. So a string literal continued on the
next line (implicit concatenation) is split only at a natural point: after ``. ``, ``; ``,
``: ``, ``, `` or a line break, or before `` (``. Only a clause too long for one line breaks at
a word, because it must.

``python -m tests.meta.messages FILE...`` lists the splits that break this rule;
``--fix`` rewraps them in place (each clause packed into 100 columns) and keeps a file only
when its syntax tree is unchanged, that is when every string is still the same string.
"""

from __future__ import annotations

import argparse
import ast
import io
import itertools
import re
import sys
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

WIDTH = 100
_PREFIX = re.compile(r"^([A-Za-z]*)(['\"])")


@dataclass(frozen=True)
class Piece:
    """One string token of a continued literal."""

    prefix: str
    quote: str
    content: str
    row: int
    col: int

    @property
    def is_f(self) -> bool:
        return "f" in self.prefix.lower()


@dataclass(frozen=True)
class Group:
    """Adjacent string tokens on consecutive lines, each alone on its line but for what ends
    the last one (a comma, closing brackets)."""

    pieces: tuple[Piece, ...]
    tail: str
    """What follows the last token on its line."""

    @property
    def col(self) -> int:
        """The column of the continuation lines (the first may follow code: ``help="...``)."""
        return self.pieces[1].col

    @property
    def is_f(self) -> bool:
        return any(piece.is_f for piece in self.pieces)

    def contents(self) -> list[str]:
        """Each piece's source text between its quotes, as one f-string's would be."""
        if not self.is_f:
            return [piece.content for piece in self.pieces]
        return [
            piece.content if piece.is_f else piece.content.replace("{", "{{").replace("}", "}}")
            for piece in self.pieces
        ]


def _piece(token: tokenize.TokenInfo) -> Piece | None:
    match = _PREFIX.match(token.string)
    if match is None or token.string.startswith(match.group(2) * 3, len(match.group(1))):
        return None  # triple-quoted: a docstring or a block, not a continued message
    prefix, quote = match.groups()
    if "b" in prefix.lower() or "r" in prefix.lower():
        return None
    return Piece(prefix, quote, token.string[len(prefix) + 1 : -1], *token.start)


def groups(source: str) -> Iterator[Group]:
    """Every continued literal of ``source`` this module can reason about."""
    lines = source.splitlines()
    run: list[tokenize.TokenInfo] = []

    def close() -> Group | None:
        if len(run) < 2:
            return None
        pieces = [_piece(token) for token in run]
        if any(piece is None for piece in pieces):
            return None
        checked = [piece for piece in pieces if piece is not None]
        first = checked[0]
        if len({piece.quote for piece in checked}) != 1:
            return None
        for before, after in itertools.pairwise(run):
            if after.start[0] != before.end[0] + 1 or after.start[1] != checked[1].col:
                return None
        if lines[first.row - 1][: first.col].strip() and first.col < checked[1].col:
            return None  # code before it, and the next line further right: not a message
        last = run[-1]
        tail = lines[last.end[0] - 1][last.end[1] :]
        if tail.strip() and not re.fullmatch(r"[,)\]}]*\s*(#.*)?", tail.strip()):
            return None
        return Group(tuple(checked), tail.rstrip())

    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.STRING:
            run.append(token)
            continue
        if token.type in (tokenize.NL, tokenize.COMMENT) and run:
            if token.type == tokenize.COMMENT:
                run.clear()
            continue
        group = close()
        if group is not None:
            yield group
        run.clear()
    group = close()
    if group is not None:
        yield group


def _outside_fields(text: str) -> list[bool]:
    """For each position of an f-string's content: whether it is outside ``{...}``."""
    outside, depth, index = [], 0, 0
    while index < len(text):
        pair = text[index : index + 2]
        if depth == 0 and pair in ("{{", "}}"):
            outside += [True, True]
            index += 2
            continue
        char = text[index]
        if char == "{":
            depth += 1
        outside.append(depth == 0)
        if char == "}" and depth:
            depth -= 1
        index += 1
    return outside


def natural_points(text: str, is_f: bool) -> list[int]:
    """Offsets in ``text`` where a line may end: after a clause's punctuation and its space,
    after an escaped line break, before a parenthesis."""
    outside = _outside_fields(text) if is_f else [True] * len(text)
    points = []
    for index in range(1, len(text)):
        if not (outside[index - 1] and outside[index]):
            continue
        before = text[max(0, index - 2) : index]
        after_clause = before[-1:] == " " and before[:1] in ".;:,"
        after_break = text.endswith("\\n", 0, index)
        before_parenthesis = text[index] == "(" and text[index - 1] == " "
        if after_clause or after_break or before_parenthesis:
            points.append(index)
    return points


def _word_points(text: str, is_f: bool) -> list[int]:
    outside = _outside_fields(text) if is_f else [True] * len(text)
    return [i for i in range(1, len(text)) if text[i - 1] == " " and outside[i - 1] and outside[i]]


def _room(group: Group, last: bool, first: bool = False) -> int:
    prefix = "f" if group.is_f else group.pieces[0].prefix
    col = group.pieces[0].col if first else group.col
    return WIDTH - col - len(prefix) - 2 - (len(group.tail) if last else 0)


def bad_splits(group: Group) -> list[int]:
    """The source rows of pieces that end mid-phrase when the clause they cut would fit."""
    contents = group.contents()
    text = "".join(contents)
    points = natural_points(text, group.is_f)
    bad, offset = [], 0
    for index, content in enumerate(contents[:-1]):
        offset += len(content)
        if offset in points:
            continue
        start = max((p for p in points if p < offset), default=0)
        end = min((p for p in points if p > offset), default=len(text))
        last = end == len(text)
        if end - start <= _room(group, last):
            bad.append(group.pieces[index].row)
    return bad


def wrap(group: Group) -> list[str]:
    """The group's content packed into lines: clauses whole where they fit, else by words."""
    text = "".join(group.contents())
    points = natural_points(text, group.is_f)
    clauses, start = [], 0
    for point in [*points, len(text)]:
        clauses.append(text[start:point])
        start = point
    chunks: list[str] = []
    for clause in clauses:
        if len(clause) <= _room(group, False):
            chunks.append(clause)
            continue
        words, begin = [], 0
        for point in [*_word_points(clause, group.is_f), len(clause)]:
            words.append(clause[begin:point])
            begin = point
        chunks.extend(words)
    lines = [""]
    for chunk in chunks:
        if lines[-1] and len(lines[-1]) + len(chunk) > _room(group, False, len(lines) == 1):
            lines.append(chunk)
        else:
            lines[-1] += chunk
    if len(lines[-1]) > _room(group, True, len(lines) == 1):
        # The tail does not fit beside the last line: move its last chunk down.
        for chunk in reversed(chunks):
            if lines[-1].endswith(chunk) and len(chunk) < len(lines[-1]):
                lines[-1] = lines[-1][: -len(chunk)]
                lines.append(chunk)
                break
    return [line for line in lines if line]


def _literal(line: str, prefix: str, quote: str) -> str:
    """One line of a rewrapped literal: an f-string only where the line has a field."""
    if prefix != "f" or not any(opens for opens in _fields_mask(line)):
        if prefix == "f":
            line = line.replace("{{", "{").replace("}}", "}")
            prefix = ""
        return f"{prefix}{quote}{line}{quote}"
    return f"f{quote}{line}{quote}"


def _fields_mask(text: str) -> list[bool]:
    """For each position: whether it opens a replacement field (``{`` not doubled)."""
    mask, index = [False] * len(text), 0
    while index < len(text):
        if text[index : index + 2] in ("{{", "}}"):
            index += 2
            continue
        if text[index] == "{":
            mask[index] = True
        index += 1
    return mask


def fix(source: str) -> str:
    """``source`` with every group that has a bad split rewrapped (same syntax tree)."""
    lines = source.splitlines(keepends=True)
    for group in sorted(groups(source), key=lambda g: -g.pieces[0].row):
        if not bad_splits(group):
            continue
        prefix = "f" if group.is_f else group.pieces[0].prefix
        quote = group.pieces[0].quote
        indent = " " * group.col
        wrapped = wrap(group)
        first, last = group.pieces[0].row - 1, group.pieces[-1].row - 1
        lead = lines[first][: group.pieces[0].col]
        body = [f"{indent}{_literal(line, prefix, quote)}\n" for line in wrapped]
        body[0] = lead + body[0][len(indent) :]
        body[-1] = body[-1].rstrip("\n") + group.tail + "\n"
        candidate = [*lines[:first], *body, *lines[last + 1 :]]
        if ast.dump(ast.parse("".join(candidate))) == ast.dump(ast.parse("".join(lines))):
            lines = candidate
    return "".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.meta.messages", description=__doc__)
    parser.add_argument("--fix", action="store_true", help="rewrap in place")
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    found = 0
    for path in args.files:
        source = path.read_text()
        if args.fix:
            fixed = fix(source)
            if fixed != source:
                path.write_text(fixed)
            source = fixed
        for group in groups(source):
            for row in bad_splits(group):
                print(f"{path}:{row}: split mid-phrase")
                found += 1
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
