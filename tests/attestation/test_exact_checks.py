"""Issue 21 item 13: tokens that are almost right fail ``attest verify``, through the real command.

Each token is built here (tests/attestation/builder.py, independent of the parser) to hit one
gap: a measurement algorithm other than the manifest's, a truncated RIM, an expected RIM of the
wrong length, a platform challenge or realm challenge of the wrong length, a truncated
personalization value, a realm token not signed ES384 with a P-384 key, and a required check
that could not be evaluated. Every one must leave the command with a non-zero exit and a reason
that names the check and both sides.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.attestation.builder import ES256, ES512, TokenSpec, build_token, new_key, public_pem
from tests.cli.run import kubevirt_cca

RPV = b"\x11" * 64


def vmi(algo: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {"personalizationValue": base64.b64encode(RPV).decode()}
    if algo is not None:
        params["measurementAlgo"] = algo
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": {
            "name": "realm",
            "labels": {"cca.kubevirt.io/enabled": "true"},
            "annotations": {"cca.kubevirt.io/launch-security": json.dumps(params)},
        },
        "spec": {},
    }


def verify(
    tmp_path: Path,
    spec: TokenSpec,
    *extra: str,
    algo: str | None = "sha256",
    anchor: ec.EllipticCurvePrivateKey | None = None,
) -> subprocess.CompletedProcess[str]:
    """``kubevirt-cca attest verify`` of ``spec``'s token against a VMI declaring ``algo``."""
    (tmp_path / "token.cbor").write_bytes(build_token(spec))
    (tmp_path / "nonce.bin").write_bytes(spec.nonce)
    (tmp_path / "cpak.pem").write_bytes(public_pem(anchor or spec.platform_key))
    (tmp_path / "vmi.json").write_text(json.dumps(vmi(algo)))
    return kubevirt_cca(
        "attest",
        "verify",
        str(tmp_path / "token.cbor"),
        "--nonce-file",
        str(tmp_path / "nonce.bin"),
        "--trust-anchor",
        str(tmp_path / "cpak.pem"),
        "--vmi",
        str(tmp_path / "vmi.json"),
        *extra,
    )


def checks(result: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    report = json.loads(result.stdout)
    assert report["verdict"] == ("pass" if result.returncode == 0 else "fail")
    return {check["name"]: check for check in report["checks"]}


def failed_required(result: subprocess.CompletedProcess[str]) -> set[str]:
    return {
        name
        for name, check in checks(result).items()
        if check["required"] and check["status"] != "pass"
    }


def sha512_spec(spec: TokenSpec) -> TokenSpec:
    return spec.but(rpv=RPV, hash_algo="sha-512", rim=b"\x5a" * 64, rems=(b"\x33" * 64,) * 4)


def test_the_baseline_passes(tmp_path: Path, spec: TokenSpec) -> None:
    """The cases below differ from this one in one value each: what fails is that value."""
    result = verify(tmp_path, spec.but(rpv=RPV), "--expected-rim", spec.rim.hex())
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("attestation: PASSED\n")
    assert "[ok  ] measurement-algorithm: the Realm measures with sha-256" in result.stdout
    assert "because:" not in result.stdout


def test_a_sha512_token_fails_against_a_sha256_manifest(tmp_path: Path, spec: TokenSpec) -> None:
    chosen = sha512_spec(spec)
    result = verify(tmp_path, chosen, "--output", "json", algo="sha256")
    assert result.returncode == 1, result.stderr
    assert failed_required(result) == {"measurement-algorithm"}
    detail = checks(result)["measurement-algorithm"]["message"]
    assert "the token's measurement algorithm (claim 44236) is 'sha-512'" in detail
    assert "declares measurementAlgo 'sha256'" in detail
    # The same token against a manifest that asks for sha512 passes: only the algorithm differed.
    assert verify(tmp_path, chosen, algo="sha512").returncode == 0


def test_a_sha256_token_fails_against_a_sha512_manifest_in_text(
    tmp_path: Path, spec: TokenSpec
) -> None:
    result = verify(tmp_path, spec.but(rpv=RPV), algo="sha512")
    assert result.returncode == 1
    assert result.stdout.startswith(
        "attestation: FAILED\n  because: measurement-algorithm failed\n"
    )
    assert "[FAIL] measurement-algorithm: the token's measurement algorithm" in result.stdout


def test_no_declared_algorithm_is_not_checked_and_not_required(
    tmp_path: Path, spec: TokenSpec
) -> None:
    result = verify(tmp_path, sha512_spec(spec), "--output", "json", algo=None)
    assert result.returncode == 0, result.stdout
    check = checks(result)["measurement-algorithm"]
    assert check["status"] == "not-checked" and check["required"] is False
    assert "'sha-512' (the host's choice)" in check["message"]


def test_a_rim_truncated_to_32_bytes_fails_in_a_sha512_token(
    tmp_path: Path, spec: TokenSpec
) -> None:
    truncated = b"\x5a" * 32
    chosen = sha512_spec(spec).but(rim=truncated)
    result = verify(
        tmp_path, chosen, "--expected-rim", truncated.hex(), "--output", "json", algo="sha512"
    )
    assert result.returncode == 1
    assert failed_required(result) == {"initial-measurement"}
    assert (
        "the token's RIM is 32 bytes, but a sha-512 RIM is 64"
        in (checks(result)["initial-measurement"]["message"])
    )


def test_an_expected_rim_of_the_wrong_length_fails(tmp_path: Path, spec: TokenSpec) -> None:
    chosen = sha512_spec(spec)
    result = verify(
        tmp_path, chosen, "--expected-rim", chosen.rim[:32].hex(), "--output", "json", algo="sha512"
    )
    assert result.returncode == 1
    assert failed_required(result) == {"initial-measurement"}
    assert (
        "the expected RIM is 32 bytes, but this Realm measures with sha-512"
        in (checks(result)["initial-measurement"]["message"])
    )


def test_a_platform_challenge_shorter_than_its_hash_fails_the_binding(
    tmp_path: Path, spec: TokenSpec
) -> None:
    """The key hash algorithm says sha-512; the platform challenge holds 32 bytes of it."""
    from tests.attestation.builder import realm_key_claim

    whole = hashlib.sha512(realm_key_claim(spec.realm_key, "raw")).digest()
    chosen = spec.but(rpv=RPV, key_hash_algo="sha-512", platform_challenge=whole[:32])
    result = verify(tmp_path, chosen, "--output", "json")
    assert result.returncode == 1
    assert failed_required(result) == {"realm-platform-binding"}
    assert (
        "the platform challenge is 32 bytes, but a sha-512 hash of the realm key claim is 64"
        in (checks(result)["realm-platform-binding"]["message"])
    )
    assert verify(tmp_path, chosen.but(platform_challenge=whole)).returncode == 0


@pytest.mark.parametrize(
    ("claim", "value", "message"),
    [
        (44235, RPV[:63], "claim 44235 (personalization value) is 63 bytes; expected 64"),
        (44235, RPV[:32], "claim 44235 (personalization value) is 32 bytes; expected 64"),
        (10, bytes(range(32)), "claim 10 (challenge) is 32 bytes; expected 64"),
    ],
    ids=["rpv-63", "rpv-32", "challenge-32"],
)
def test_a_truncated_rpv_or_challenge_is_refused(
    tmp_path: Path, spec: TokenSpec, claim: int, value: bytes, message: str
) -> None:
    """Claims of a fixed size are refused before any check: exit 2, the claim named."""
    result = verify(tmp_path, spec.but(rpv=RPV, extra_realm_claims={claim: value}))
    assert result.returncode == 2
    assert result.stdout == ""
    assert message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"realm_alg": ES256},
            "the realm token's algorithm is -7 (ES256); the RMM signs realm tokens with ES384",
        ),
        (
            {"realm_alg": ES512},
            "the realm token's algorithm is -36 (ES512); the RMM signs realm tokens with ES384",
        ),
        (
            {"realm_key": "P-256", "realm_alg": ES256},
            "the realm public key is 65 bytes; an uncompressed P-384 point is 97",
        ),
        (
            {"realm_key": "P-256", "realm_alg": ES256, "realm_key_encoding": "cose-key"},
            "the realm public key COSE_Key has crv 1 (P-256); expected 2 (P-384)",
        ),
        (
            {"realm_key": "P-521", "realm_alg": ES512, "realm_key_encoding": "cose-key"},
            "the realm public key COSE_Key has crv 3 (P-521); expected 2 (P-384)",
        ),
    ],
    ids=[
        "es256-p384-key",
        "es512-p384-key",
        "es256-raw-p256",
        "es256-cose-p256",
        "es512-cose-p521",
    ],
)
def test_a_realm_token_not_es384_on_p384_fails(
    tmp_path: Path, spec: TokenSpec, changes: dict[str, Any], message: str
) -> None:
    """Each of these tokens is correctly signed, with the key it carries: only the algorithm or
    the curve is not the RMM's."""
    curves = {"P-256": ec.SECP256R1(), "P-521": ec.SECP521R1()}
    if "realm_key" in changes:
        changes = {**changes, "realm_key": new_key(curves[changes["realm_key"]])}
    result = verify(tmp_path, spec.but(rpv=RPV, **changes), "--output", "json")
    assert result.returncode == 1, result.stderr
    assert failed_required(result) == {"realm-signature"}
    assert message in checks(result)["realm-signature"]["message"]


def test_a_required_check_that_was_not_evaluated_fails_the_verdict(
    tmp_path: Path, spec: TokenSpec, other_key: ec.EllipticCurvePrivateKey
) -> None:
    """Under a wrong trust anchor the platform key is unknown, so production-keys cannot be
    decided: required and not evaluated, it is a reason of its own for the failed verdict."""
    chosen = spec.but(rpv=RPV)
    result = verify(tmp_path, chosen, anchor=other_key)
    assert result.returncode == 1
    assert result.stdout.startswith(
        "attestation: FAILED\n  because: platform-signature failed; "
        "production-keys is required but was not evaluated\n"
    )
    report = verify(tmp_path, chosen, "--output", "json", anchor=other_key)
    production = checks(report)["production-keys"]
    assert production["status"] == "not-checked" and production["required"] is True
    assert failed_required(report) == {"platform-signature", "production-keys"}
