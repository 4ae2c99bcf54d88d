"""The one JSON envelope of every report (core/wire/report_envelope.py, docs/cli.md)."""

from __future__ import annotations

import pytest

from kubevirt_cca.core.wire import report_envelope as envelope


def test_the_envelope_keys_come_first_then_the_payload() -> None:
    checks = [envelope.check("a", "pass", "fine")]
    report = envelope.envelope("DoctorReport", checks, {"ready": True})
    assert list(report) == ["schemaVersion", "kind", "verdict", "checks", "ready"]
    assert report["schemaVersion"] == "kubevirt-cca.io/v1"
    assert report["checks"] == [{"name": "a", "status": "pass", "message": "fine"}]


@pytest.mark.parametrize(
    ("statuses", "verdict"),
    [
        ((), "pass"),
        (("pass", "not-checked", "skip"), "pass"),
        (("pass", "warn"), "warn"),
        (("warn", "fail", "pass"), "fail"),
    ],
)
def test_the_verdict_is_the_worst_status(
    statuses: tuple[envelope.Status, ...], verdict: str
) -> None:
    checks = [envelope.check(f"c{i}", s, "m") for i, s in enumerate(statuses)]
    assert envelope.envelope("DetectionReport", checks, {})["verdict"] == verdict


def test_a_command_may_weigh_its_checks_itself() -> None:
    checks = [envelope.check("optional", "fail", "m", required=False)]
    report = envelope.envelope("AttestationVerdict", checks, {}, verdict="pass")
    assert report["verdict"] == "pass" and report["checks"][0]["required"] is False


def test_details_and_fix_appear_only_when_given() -> None:
    assert set(envelope.check("n", "warn", "m", details=(), fix="do")) == {
        "name", "status", "message", "details", "fix",
    }  # fmt: skip
    assert set(envelope.check("n", "warn", "m")) == {"name", "status", "message"}


def test_a_status_outside_the_vocabulary_is_refused() -> None:
    with pytest.raises(ValueError, match="'ok' is not one of pass, fail, warn, skip, not-checked"):
        envelope.check("n", "ok", "m")  # type: ignore[arg-type]


def test_a_payload_cannot_shadow_the_envelope() -> None:
    with pytest.raises(ValueError, match=r"\['verdict'\]"):
        envelope.envelope("AdmissionVerdict", [], {"verdict": "passed"})
