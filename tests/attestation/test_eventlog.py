"""The measurement log: a synthetic CCEL log parsed, replayed, and checked by verify."""

from __future__ import annotations

import hashlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubevirt_cca.core.attestation.eventlog import parse_event_log, replay
from kubevirt_cca.core.attestation.keys import load_trust_anchors
from kubevirt_cca.core.attestation.token import parse_token
from kubevirt_cca.core.attestation.verify import Expectations, Verdict, verify_token
from kubevirt_cca.errors import MeasurementLogError
from tests.attestation.builder import TokenSpec, build_token, public_pem
from tests.attestation.logbuilder import (
    BOOT_EVENTS,
    EV_EFI_ACTION,
    EV_NO_ACTION,
    Event,
    build_log,
    event2,
    expected_rems,
    spec_id_event,
)


def test_the_boot_log_parses_event_by_event() -> None:
    log = parse_event_log(build_log(BOOT_EVENTS, area=64 * 1024))
    assert log.algorithms == ("sha256", "sha512")
    assert [(e.mr_index, e.event_type, e.data) for e in log.events] == [
        (e.mr_index, e.event_type, e.data) for e in BOOT_EVENTS
    ]
    first = log.events[0]
    assert first.digest("sha256") == hashlib.sha256(b"firmware volume").digest()
    assert first.digest("sha512") == hashlib.sha512(b"firmware volume").digest()
    assert first.digest("sha384") is None


def test_what_was_measured_is_described() -> None:
    log = parse_event_log(build_log(BOOT_EVENTS))
    assert [(e.type_name, e.description) for e in log.events] == [
        ("EV_EFI_PLATFORM_FIRMWARE_BLOB2", "QEMU FV"),
        ("EV_EFI_VARIABLE_BOOT", "variable BootOrder"),
        ("EV_SEPARATOR", "separator"),
        ("EV_EFI_ACTION", "Calling EFI Application from Boot Option"),
        ("EV_EFI_BOOT_SERVICES_APPLICATION", "image of 20971520 bytes loaded at 0x7f000000"),
        ("EV_EVENT_TAG", "tag 0x8f3b22ed: Linux initrd"),
        ("EV_EVENT_TAG", "tag 0x8f3b22ec: LOADED_IMAGE::LoadOptions"),
        ("EV_NO_ACTION", "an informational event, extends nothing"),
    ]


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
@pytest.mark.parametrize("fill", [b"\xff", b"\x00"])
def test_replay_explains_each_rem(algorithm: str, fill: bytes) -> None:
    log = parse_event_log(build_log(BOOT_EVENTS, area=16 * 1024, fill=fill))
    rems = expected_rems(BOOT_EVENTS, algorithm)
    results = replay(log, token_algorithm=f"sha-{algorithm[3:]}", rems=rems)
    assert [r.explained for r in results] == [True] * 4
    assert [len(r.events) for r in results] == [3, 2, 2, 0]
    assert results[3].replayed == bytes(hashlib.new(algorithm).digest_size)


def test_replay_by_hand_for_rem0() -> None:
    zero = bytes(32)
    digests = [hashlib.sha256(m).digest() for m in (b"firmware volume", b"\x00\x00", bytes(4))]
    rem0 = hashlib.sha256(
        hashlib.sha256(hashlib.sha256(zero + digests[0]).digest() + digests[1]).digest()
        + digests[2]
    ).digest()
    log = parse_event_log(build_log(BOOT_EVENTS))
    result = replay(log, token_algorithm="sha-256", rems=[rem0, b"", b"", b""])[0]
    assert result.replayed == rem0 and result.explained


def test_an_unlogged_measurement_leaves_its_rem_unexplained() -> None:
    rems = list(expected_rems(BOOT_EVENTS, "sha256"))
    rems[1] = hashlib.sha256(rems[1] + hashlib.sha256(b"hidden").digest()).digest()
    results = replay(parse_event_log(build_log(BOOT_EVENTS)), token_algorithm="sha-256", rems=rems)
    assert [r.explained for r in results] == [True, False, True, True]


def test_a_log_without_the_tokens_algorithm_cannot_explain() -> None:
    log = parse_event_log(build_log(BOOT_EVENTS, algorithms=("sha512",)))
    results = replay(log, token_algorithm="sha-256", rems=expected_rems(BOOT_EVENTS, "sha256"))
    assert results[0].problem is not None and "no sha256 digest" in results[0].problem
    assert not results[0].explained
    assert results[3].explained  # nothing logged, the REM is still zero


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "ends inside"),
        (struct.pack("<II", 0, 1) + bytes(20) + struct.pack("<I", 4) + b"abcd", "Spec ID"),
        (spec_id_event(["sha256"])[:-3], "ends inside"),
        (spec_id_event(["sha256"]) + struct.pack("<III", 1, EV_EFI_ACTION, 2), "2 digests"),
        (
            spec_id_event(["sha256"]) + struct.pack("<IIIH", 1, EV_EFI_ACTION, 1, 0x0D),
            "not declared",
        ),
        (
            spec_id_event(["sha256"])
            + event2(Event(1, EV_EFI_ACTION, b"x" * 50), ["sha256"])[:-10],
            "ends inside event 1",
        ),
    ],
)
def test_malformed_logs_are_refused_with_a_reason(data: bytes, message: str) -> None:
    with pytest.raises(MeasurementLogError, match=message):
        parse_event_log(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400), st.integers(min_value=0, max_value=2000))
def test_any_bytes_parse_or_raise_the_log_error(noise: bytes, cut: int) -> None:
    data = (build_log(BOOT_EVENTS) + noise)[:cut] if cut else noise
    try:
        log = parse_event_log(data)
    except MeasurementLogError:
        return
    for event in log.events:  # whatever was read can be described and replayed
        assert isinstance(event.description, str) and event.type_name
    replay(log, token_algorithm="sha-256", rems=[bytes(32)] * 4)


events = st.lists(
    st.builds(
        Event,
        mr_index=st.integers(min_value=1, max_value=4),
        event_type=st.sampled_from([EV_EFI_ACTION, 0xD, 0x4, EV_NO_ACTION]),
        data=st.binary(max_size=40),
    ),
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(events)
def test_replay_matches_the_fold_for_any_log(chosen: list[Event]) -> None:
    log = parse_event_log(build_log(chosen))
    for algorithm in ("sha256", "sha512"):
        rems = expected_rems(chosen, algorithm)
        results = replay(log, token_algorithm=f"sha-{algorithm[3:]}", rems=rems)
        assert all(r.explained for r in results)


# --- in verify ----------------------------------------------------------------------------------


def verdict(spec: TokenSpec, log_bytes: bytes | None) -> Verdict:
    token = parse_token(build_token(spec))
    expected = Expectations(
        nonce=spec.nonce,
        personalization_value=spec.rpv,
        personalization_source="test",
        initial_measurement=spec.rim,
        measurement_log=parse_event_log(log_bytes) if log_bytes is not None else None,
    )
    return verify_token(
        token,
        anchors=load_trust_anchors(public_pem(spec.platform_key), label="cpak"),
        expected=expected,
    )


def test_verify_passes_when_the_log_explains_every_rem(spec: TokenSpec) -> None:
    chosen = spec.but(rems=expected_rems(BOOT_EVENTS, "sha256"))
    result = verdict(chosen, build_log(BOOT_EVENTS))
    check = result.check("measurement-log")
    assert check.status == "passed" and check.required
    assert result.passed
    assert result.log_replay is not None and all(r.explained for r in result.log_replay)


def test_verify_fails_when_a_rem_is_not_explained(spec: TokenSpec) -> None:
    rems = list(expected_rems(BOOT_EVENTS, "sha256"))
    rems[2] = b"\x99" * 32
    result = verdict(spec.but(rems=tuple(rems)), build_log(BOOT_EVENTS))
    check = result.check("measurement-log")
    assert check.status == "failed" and "REM2" in check.detail
    assert not result.passed


def test_verify_fails_on_a_register_a_realm_does_not_have(spec: TokenSpec) -> None:
    log = build_log([*BOOT_EVENTS, Event(9, EV_EFI_ACTION, b"pcr 9?")])
    result = verdict(spec.but(rems=expected_rems(BOOT_EVENTS, "sha256")), log)
    assert result.check("measurement-log").status == "failed"
    assert "register 9" in result.check("measurement-log").detail


def test_without_a_log_the_check_is_not_required(spec: TokenSpec) -> None:
    result = verdict(spec, None)
    check = result.check("measurement-log")
    assert check.status == "not-checked" and not check.required
    assert result.passed and result.log_replay is None
