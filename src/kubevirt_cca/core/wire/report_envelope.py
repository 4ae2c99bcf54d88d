"""The one JSON envelope of every ``--output json`` report (docs/cli.md, "The JSON envelope").

``doctor``, ``attest verify``, ``detect`` and ``validate`` print the same outer shape::

    {"schemaVersion": "kubevirt-cca.io/v1", "kind": "DoctorReport", "verdict": "pass",
     "checks": [{"name": ..., "status": ..., "message": ..., "details": [...], "fix": ...}],
     ...the command's own payload}

One status vocabulary for every check (:data:`STATUSES`) and one for the verdict
(:data:`VERDICTS`); each command maps its own words onto them where it builds its checks.
Within ``kubevirt-cca.io/v1`` fields are only added, never renamed or given another meaning.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal

SCHEMA_VERSION: Final = "kubevirt-cca.io/v1"

Kind = Literal["DoctorReport", "AttestationVerdict", "DetectionReport", "AdmissionVerdict"]
KINDS: Final[tuple[Kind, ...]] = (
    "DoctorReport",
    "AttestationVerdict",
    "DetectionReport",
    "AdmissionVerdict",
)
Status = Literal["pass", "fail", "warn", "skip", "not-checked"]
STATUSES: Final[tuple[Status, ...]] = ("pass", "fail", "warn", "skip", "not-checked")
Verdict = Literal["pass", "fail", "warn"]
VERDICTS: Final[tuple[Verdict, ...]] = ("pass", "fail", "warn")
# The keys every report starts with; a payload key must not take one of them.
ENVELOPE_KEYS: Final = ("schemaVersion", "kind", "verdict", "checks")


def check(
    name: str,
    status: Status,
    message: str,
    *,
    details: Iterable[str] | None = None,
    fix: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One entry of ``checks[]``; ``extra`` holds a command's own per-check fields."""
    if status not in STATUSES:
        raise ValueError(f"check status {status!r} is not one of {', '.join(STATUSES)}")
    entry: dict[str, Any] = {"name": name, "status": status, "message": message}
    if details is not None:
        entry["details"] = list(details)
    if fix is not None:
        entry["fix"] = fix
    entry.update(extra)
    return entry


def verdict_of(checks: Iterable[Mapping[str, Any]]) -> Verdict:
    """``fail`` when a check failed, else ``warn`` when one warned, else ``pass``."""
    statuses = {entry["status"] for entry in checks}
    if "fail" in statuses:
        return "fail"
    if "warn" in statuses:
        return "warn"
    return "pass"


def envelope(
    kind: Kind,
    checks: list[dict[str, Any]],
    payload: Mapping[str, Any],
    *,
    verdict: Verdict | None = None,
) -> dict[str, Any]:
    """The report: the envelope keys first, then ``payload``.

    ``verdict`` defaults to :func:`verdict_of` the checks; a command whose verdict weighs its
    checks differently (``attest verify``: only required checks count) passes its own.
    """
    clash = set(payload) & set(ENVELOPE_KEYS)
    if clash:
        raise ValueError(f"payload keys {sorted(clash)} are the envelope's")
    return {
        "schemaVersion": SCHEMA_VERSION,
        "kind": kind,
        "verdict": verdict_of(checks) if verdict is None else verdict,
        "checks": checks,
        **payload,
    }
