"""RMM 2.0 tokens (TF-RMM main): tag 907, the 2.0 realm profile, the Realm Instance ID (claim
256) and the MEC policy (claim 44243) are parsed, shown and, when the owner pins them, checked.

The tokens are built by tests/attestation/builder.py from the RMM specification's CDDL
(DEN0137 A7.2.3.1): instance id ``bytes .size 33`` starting 0x01, MEC policy ``0 / 1``; earlier
encodings wrote the MEC policy as the text "shared" / "private".
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from kubevirt_cca.core.attestation.checks import Expectations
from kubevirt_cca.core.attestation.pins import mec_policy, realm_instance_id, realm_profile
from kubevirt_cca.core.attestation.token import parse_token
from kubevirt_cca.core.attestation.verify import CHECK_NAMES
from kubevirt_cca.errors import AttestationError
from tests.attestation.builder import (
    REALM_PROFILE_1,
    REALM_PROFILE_2,
    RMM2_INSTANCE_ID,
    TokenSpec,
    build_token,
    public_pem,
    rmm2,
)
from tests.attestation.test_checks import expectations, run
from tests.attestation.test_cli import attest

PINS = ("realm-profile", "realm-instance-id", "mec-policy")


def test_a_default_tf_rmm_2_token_parses_with_its_new_claims(spec: TokenSpec) -> None:
    token = parse_token(build_token(rmm2(spec)))
    assert token.form == "tag-907"
    realm = token.realm_claims
    assert realm is not None
    assert realm.profile == REALM_PROFILE_2
    assert realm.instance_id == RMM2_INSTANCE_ID
    assert (realm.mec_policy, realm.mec_policy_encoding) == ("shared", "integer")
    assert realm.other == ()  # both claims are interpreted, none left over


@pytest.mark.parametrize(
    ("value", "policy", "encoding"),
    [
        (0, "shared", "integer"),
        (1, "private", "integer"),
        ("shared", "shared", "text"),
        ("private", "private", "text"),
    ],
)
def test_the_mec_policy_in_either_encoding(
    spec: TokenSpec, value: int | str, policy: str, encoding: str
) -> None:
    realm = parse_token(build_token(rmm2(spec).but(mec_policy=value))).realm_claims
    assert realm is not None
    assert (realm.mec_policy, realm.mec_policy_encoding) == (policy, encoding)


def test_an_rmm_1_token_has_neither_claim(spec: TokenSpec) -> None:
    realm = parse_token(build_token(spec)).realm_claims
    assert realm is not None
    assert (realm.instance_id, realm.mec_policy, realm.mec_policy_encoding) == (None, None, None)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"instance_id": RMM2_INSTANCE_ID[:32]}, "claim 256 (realm instance id) is 32 bytes"),
        ({"instance_id": RMM2_INSTANCE_ID + b"\x00"}, "is 34 bytes; expected 33"),
        ({"instance_id": b"\x02" + RMM2_INSTANCE_ID[1:]}, "starts with byte 0x02"),
        ({"instance_id": RMM2_INSTANCE_ID.hex()}, "claim 256 (realm instance id) must be a byte"),
        ({"mec_policy": 2}, "claim 44243 (MEC policy) is 2; expected 0 (shared) or 1"),
        ({"mec_policy": 255}, "is 255"),
        ({"mec_policy": "Private"}, "is 'Private'"),
        ({"mec_policy": b"\x00"}, "is a byte string"),
        ({"extra_realm_claims": {44243: True}}, "is a boolean"),
        ({"extra_realm_claims": {44243: -1}}, "is -1"),
        ({"extra_realm_claims": {44243: float("nan")}}, "is a float"),
    ],
)
def test_a_malformed_claim_is_refused_naming_it(
    spec: TokenSpec, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(AttestationError, match="the realm token's claim") as raised:
        parse_token(build_token(rmm2(spec).but(**changes)))
    assert message in str(raised.value)


def test_nothing_pinned_leaves_the_three_checks_not_required(spec: TokenSpec) -> None:
    chosen = rmm2(spec)
    verdict = run(chosen)
    assert verdict.passed
    for name in PINS:
        check = verdict.check(name)
        assert (check.status, check.required) == ("not-checked", False), check
    assert RMM2_INSTANCE_ID.hex() in verdict.check("realm-instance-id").detail
    assert "shared" in verdict.check("mec-policy").detail


def test_pinned_values_that_match_pass(spec: TokenSpec) -> None:
    chosen = rmm2(spec).but(mec_policy=1)
    pinned = expectations(
        chosen, realm_profile=REALM_PROFILE_2, instance_id=RMM2_INSTANCE_ID, mec_policy="private"
    )
    verdict = run(chosen, expected=pinned)
    assert [check.name for check in verdict.checks] == list(CHECK_NAMES)
    assert verdict.passed, verdict.failures
    for name in PINS:
        assert (verdict.check(name).status, verdict.check(name).required) == ("passed", True)


@pytest.mark.parametrize(
    ("token_changes", "pins", "failing"),
    [
        ({"realm_profile": REALM_PROFILE_1}, {"realm_profile": REALM_PROFILE_2}, "realm-profile"),
        ({"realm_profile": None}, {"realm_profile": REALM_PROFILE_2}, "realm-profile"),
        (
            {"instance_id": b"\x01" + bytes(32)},
            {"instance_id": RMM2_INSTANCE_ID},
            "realm-instance-id",
        ),
        ({"instance_id": None}, {"instance_id": RMM2_INSTANCE_ID}, "realm-instance-id"),
        ({"mec_policy": 0}, {"mec_policy": "private"}, "mec-policy"),
        ({"mec_policy": "private"}, {"mec_policy": "shared"}, "mec-policy"),
        ({"mec_policy": None}, {"mec_policy": "shared"}, "mec-policy"),
    ],
)
def test_a_pinned_value_the_token_does_not_carry_fails_the_verdict(
    spec: TokenSpec, token_changes: dict[str, Any], pins: dict[str, Any], failing: str
) -> None:
    chosen = rmm2(spec).but(**token_changes)
    verdict = run(chosen, expected=expectations(chosen, **pins))
    assert not verdict.passed
    assert verdict.failures == (f"{failing} failed",)
    assert verdict.check(failing).required


def test_a_platform_token_alone_fails_every_pin(spec: TokenSpec) -> None:
    pinned = Expectations(
        nonce=bytes(64),
        personalization_value=bytes(64),
        personalization_source="--expected-rpv",
        realm_profile=REALM_PROFILE_2,
        instance_id=RMM2_INSTANCE_ID,
        mec_policy="shared",
    )
    for check in (realm_profile, realm_instance_id, mec_policy):
        assert check(None, pinned).status == "failed"


# --- the command line ------------------------------------------------------------------------


@pytest.fixture
def rmm2_files(tmp_path: Path, spec: TokenSpec) -> dict[str, Path]:
    chosen = rmm2(spec).but(mec_policy=1)
    paths = {name: tmp_path / name for name in ("token.cbor", "nonce.bin", "cpak.pem")}
    paths["token.cbor"].write_bytes(build_token(chosen))
    paths["nonce.bin"].write_bytes(chosen.nonce)
    paths["cpak.pem"].write_bytes(public_pem(chosen.platform_key))
    return paths


def _verify(files: dict[str, Path], spec: TokenSpec, *extra: str) -> tuple[int, str, str]:
    return attest(
        "verify",
        files["token.cbor"],
        "--nonce-file",
        files["nonce.bin"],
        "--trust-anchor",
        files["cpak.pem"],
        "--expected-rpv",
        base64.b64encode(spec.rpv).decode(),
        *extra,
    )


def test_show_prints_the_new_claims(rmm2_files: dict[str, Path]) -> None:
    code, out, _ = attest("show", rmm2_files["token.cbor"])
    assert code == 0
    assert "form: tag-907" in out
    assert f"profile: {REALM_PROFILE_2}" in out
    assert f"instanceId: {RMM2_INSTANCE_ID.hex()}" in out
    assert "mecPolicy: private" in out
    code, out, _ = attest("show", rmm2_files["token.cbor"], "--output", "json")
    realm = json.loads(out)["realm"]
    assert (realm["instanceId"], realm["mecPolicy"]) == (RMM2_INSTANCE_ID.hex(), "private")
    assert realm["otherClaims"] == {}


def test_verify_pins_from_the_command_line(rmm2_files: dict[str, Path], spec: TokenSpec) -> None:
    pins = [
        "--expected-profile",
        REALM_PROFILE_2,
        "--expected-instance-id",
        RMM2_INSTANCE_ID.hex(),
        "--expected-mec-policy",
        "private",
    ]
    code, out, err = _verify(rmm2_files, spec, *pins, "--output", "json")
    assert code == 0, (out, err)
    checks = {c["name"]: c for c in json.loads(out)["checks"]}
    assert all(checks[name]["status"] == "pass" and checks[name]["required"] for name in PINS)
    code, out, _ = _verify(rmm2_files, spec, "--expected-mec-policy", "shared")
    assert code == 1
    assert "because: mec-policy failed" in out
    assert "[FAIL] mec-policy: the Realm's MEC policy (claim 44243) is private" in out
    other = "01" + "ff" * 32
    code, out, _ = _verify(rmm2_files, spec, "--expected-instance-id", other)
    assert code == 1 and "because: realm-instance-id failed" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--expected-instance-id", "zz"], "--expected-instance-id is not hexadecimal"),
        (["--expected-instance-id", "01" * 32], "is 32 bytes starting 01; a Realm Instance ID"),
        (["--expected-instance-id", "02" + "00" * 32], "33 bytes starting 02"),
    ],
)
def test_an_unusable_pin_exits_2(
    rmm2_files: dict[str, Path], spec: TokenSpec, extra: list[str], message: str
) -> None:
    code, out, err = _verify(rmm2_files, spec, *extra)
    assert code == 2 and out == ""
    assert err.startswith("kubevirt-cca attest: error: ") and message in err


@pytest.mark.parametrize(
    "extra",
    [["--expected-profile", "tag:arm.com,2099:realm#9"], ["--expected-mec-policy", "1"]],
)
def test_a_pin_outside_its_choices_is_a_usage_error(
    rmm2_files: dict[str, Path], spec: TokenSpec, extra: list[str]
) -> None:
    with pytest.raises(SystemExit) as raised:
        _verify(rmm2_files, spec, *extra)
    assert raised.value.code == 2
