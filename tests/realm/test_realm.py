"""The realm lane: Realms created by KVM and a real RMM (TF-RMM v0.6.0 = RMM 1.0) on the emulated
Arm CCA host of ``../shared/cca-emu``, checked with kubevirt-cca's own attestation commands.

For each Realm of ``cases.CASES`` (SHA-256 and SHA-512, zero and non-zero personalization value):

- the launcher created what it was asked for, and the payload's RSI calls answered as RSI 1.0
  says (version 1.0, the Realm's IPA width and hash algorithm from RSI_REALM_CONFIG);
- ``attest show`` parses the real token (tag 399, realm profile 1.0.0) and finds the Realm's
  challenge, personalization value and the RIM that RSI_MEASUREMENT_READ(0) returned;
- ``attest reference --payload``, given only the launch inputs the launcher printed, computes
  that same RIM (the model of ``core/attestation/reference.py`` against the real RMM);
- ``attest verify --allow-test-keys`` passes with the challenge, the VM manifest's
  personalization value and the computed reference, and reports the token as a test token;
- a wrong personalization value, the other algorithm's reference, or one changed payload byte
  makes it fail, on the check that should catch it;
- the real RMM 1.0 token has none of RMM 2.0's claims (instance id, MEC policy) and nothing
  uninterpreted; its profile pins to 1.0.0, and a 2.0 profile, instance id or MEC policy pin
  fails on its own check.

The oracles are the RMM's own answers (RSI_MEASUREMENT_READ, the signed token) and the launch
inputs the launcher printed; none comes from the code under test.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubevirt_cca.constants import ENABLED_LABEL, LAUNCH_SECURITY_ANNOTATION
from tests.attestation.test_cli import attest
from tests.cli.run import kubevirt_cca
from tests.conftest import SHARED
from tests.realm.cases import (
    CASES,
    DIGEST_BYTES,
    RSI_ABI_1_0,
    RSI_HASH_ALGO,
    RSI_SUCCESS,
    RealmCase,
    RealmRun,
)
from tests.realm.conftest import RealmLane

pytestmark = [pytest.mark.realm, pytest.mark.shared, pytest.mark.timeout(900)]

# The published sample CPAK, public half: the platform key of TF-A's QEMU platform token.
CPAK = SHARED / "fixtures" / "attestation" / "rust-ccatoken" / "cpak.json"
TOKEN_HASH_NAMES = {"sha256": "sha-256", "sha512": "sha-512"}
OTHER_ALGO = {"sha256": "sha512", "sha512": "sha256"}


@pytest.fixture(params=CASES, ids=lambda case: case.name)
def case(request: pytest.FixtureRequest) -> RealmCase:
    result: RealmCase = request.param
    return result


@pytest.fixture
def run(realm_lane: RealmLane, case: RealmCase) -> RealmRun:
    found = realm_lane.runs.get(case.name)
    assert found is not None, f"the launcher never began {case.name}:\n{realm_lane.console[-4000:]}"
    assert found.ok, f"{case.name} failed: {found.failures}"
    assert found.token is not None, f"{case.name} printed no token"
    return found


@pytest.fixture
def files(tmp_path: Path, case: RealmCase, run: RealmRun) -> dict[str, Path]:
    """The token and nonce as a verifier gets them, and the VM manifest the Realm came from."""
    assert run.token is not None
    paths = {"token": tmp_path / "token.cbor", "nonce": tmp_path / "nonce.bin"}
    paths["token"].write_bytes(run.token)
    paths["nonce"].write_bytes(case.challenge)
    paths["vmi"] = write_vmi(tmp_path / "vmi.yaml", algo=case.algo, rpv=case.rpv)
    return paths


def test_the_launcher_made_the_realm_it_was_asked_for(
    realm_lane: RealmLane, case: RealmCase, run: RealmRun
) -> None:
    launch = run.launch
    assert (launch["algo"], int(launch["ipa_bits"]), int(launch["ram_size"], 16)) == (
        case.algo,
        case.ipa_bits,
        case.ram_size,
    )
    assert (run.rpv, run.challenge) == (case.rpv, case.challenge)
    payload = realm_lane.payload.read_bytes()
    assert int(launch["payload_bytes"]) == len(payload)
    assert run.payload_sha256 == hashlib.sha256(payload).digest()
    assert int(launch["pc"], 16) == int(launch["ram_base"], 16)
    assert launch["gprs"] == ",".join(["0"] * 8)
    assert (launch["pmu"], launch["sve"]) == ("no", "no")


def test_rsi_answers_as_rsi_1_0(case: RealmCase, run: RealmRun) -> None:
    assert run.version == (RSI_SUCCESS, RSI_ABI_1_0, RSI_ABI_1_0)
    assert run.config == (RSI_SUCCESS, case.ipa_bits, RSI_HASH_ALGO[case.algo])
    size = DIGEST_BYTES[case.algo]
    assert run.rim_status == RSI_SUCCESS
    assert len(run.rim_slot) == 64 and run.rim_slot[size:] == bytes(64 - size)
    assert run.rim_slot[:size] != bytes(size)


def test_attest_show_parses_the_real_token(
    case: RealmCase, run: RealmRun, files: dict[str, Path]
) -> None:
    shown = kubevirt_cca("attest", "show", "--output", "json", str(files["token"]))
    assert shown.returncode == 0, shown.stderr
    token = json.loads(shown.stdout)
    assert token["form"] == "tag-399"
    realm = token["realm"]
    assert realm["profile"] == "tag:arm.com,2023:realm#1.0.0"
    assert realm["challenge"] == case.challenge.hex()
    assert realm["personalizationValue"] == case.rpv.hex()
    assert realm["hashAlgorithm"] == TOKEN_HASH_NAMES[case.algo]
    assert realm["initialMeasurement"] == run.rim_slot[: DIGEST_BYTES[case.algo]].hex()
    assert realm["extensibleMeasurements"] == [bytes(DIGEST_BYTES[case.algo]).hex()] * 4
    assert token["platform"]["profile"] == "tag:arm.com,2023:cca_platform#1.0.0"


def test_attest_reference_predicts_the_rmms_rim(
    realm_lane: RealmLane, tmp_path: Path, case: RealmCase, run: RealmRun
) -> None:
    reference = compute_reference(tmp_path, run, payload=realm_lane.payload, algo=case.algo)
    assert reference["measurementAlgo"] == case.algo
    assert reference["rim"] == run.rim_slot[: DIGEST_BYTES[case.algo]].hex()


def test_attest_verify_passes_and_flags_the_test_platform(
    realm_lane: RealmLane, tmp_path: Path, case: RealmCase, run: RealmRun, files: dict[str, Path]
) -> None:
    reference = tmp_path / "reference.json"
    reference.write_text(
        json.dumps(compute_reference(tmp_path, run, payload=realm_lane.payload, algo=case.algo))
    )
    result = kubevirt_cca(
        "attest",
        "verify",
        str(files["token"]),
        "--nonce-file",
        str(files["nonce"]),
        "--vmi",
        str(files["vmi"]),
        "--trust-anchor",
        str(CPAK),
        "--reference",
        str(reference),
        "--allow-test-keys",
        "--output",
        "json",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    verdict = json.loads(result.stdout)
    assert verdict["verdict"] == "pass" and verdict["testToken"] is True
    checks = {check["name"]: check for check in verdict["checks"]}
    for name in (
        "platform-signature",
        "realm-signature",
        "realm-platform-binding",
        "realm-challenge",
        "personalization-value",
        "initial-measurement",
        "platform-lifecycle",
    ):
        assert (checks[name]["status"], checks[name]["required"]) == ("pass", True), checks[name]
    assert (checks["production-keys"]["status"], checks["production-keys"]["required"]) == (
        "fail",
        False,
    )


def test_a_wrong_personalization_value_fails_verify(
    realm_lane: RealmLane, tmp_path: Path, case: RealmCase, run: RealmRun, files: dict[str, Path]
) -> None:
    wrong = bytes([case.rpv[0] ^ 1]) + case.rpv[1:]
    vmi = write_vmi(tmp_path / "other-vmi.yaml", algo=case.algo, rpv=wrong)
    checks = verify(files, vmi=vmi, reference=_reference_file(tmp_path, run, realm_lane, case.algo))
    assert failed(checks) == ["personalization-value"]


def test_the_other_algorithms_reference_fails_verify(
    realm_lane: RealmLane, tmp_path: Path, case: RealmCase, run: RealmRun, files: dict[str, Path]
) -> None:
    reference = _reference_file(tmp_path, run, realm_lane, OTHER_ALGO[case.algo])
    checks = verify(files, vmi=files["vmi"], reference=reference)
    assert failed(checks) == ["initial-measurement"]


def test_one_changed_payload_byte_fails_verify(
    realm_lane: RealmLane, tmp_path: Path, case: RealmCase, run: RealmRun, files: dict[str, Path]
) -> None:
    payload = bytearray(realm_lane.payload.read_bytes())
    payload[len(payload) // 2] ^= 0x01
    changed = tmp_path / "changed-payload.bin"
    changed.write_bytes(bytes(payload))
    reference = tmp_path / "changed-reference.json"
    reference.write_text(
        json.dumps(compute_reference(tmp_path, run, payload=changed, algo=case.algo))
    )
    checks = verify(files, vmi=files["vmi"], reference=reference)
    assert failed(checks) == ["initial-measurement"]


# --- helpers -------------------------------------------------------------------------------------


def write_vmi(path: Path, *, algo: str, rpv: bytes) -> Path:
    """A VMI manifest asking for this Realm, the way a VM owner writes it (docs/vm-owners.md)."""
    parameters: dict[str, str] = {"measurementAlgo": algo}
    if rpv != bytes(64):
        parameters["personalizationValue"] = base64.b64encode(rpv).decode("ascii")
    manifest = {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": {
            "name": "realm-lane",
            "labels": {ENABLED_LABEL: "true"},
            "annotations": {LAUNCH_SECURITY_ANNOTATION: json.dumps(parameters)},
        },
        "spec": {"domain": {"devices": {}, "memory": {"guest": "2Mi"}}},
    }
    path.write_text(yaml.safe_dump(manifest))
    return path


def host_profile(run: RealmRun, *, algo: str) -> dict[str, Any]:
    """The host profile of the launch the launcher printed (KVM passes BRPs/WRPs as num_bps/wps)."""
    launch = run.launch
    return {
        "rmmVersion": "1.0",
        "measurementAlgo": algo,
        "ipaBits": int(launch["ipa_bits"]),
        "lpa2": False,
        "sveVectorLength": None,
        "breakpoints": int(launch["brps"]) + 1,
        "watchpoints": int(launch["wrps"]) + 1,
        "pmuCounters": None,
    }


def compute_reference(tmp_path: Path, run: RealmRun, *, payload: Path, algo: str) -> Any:
    profile = tmp_path / f"profile-{algo}.yaml"
    profile.write_text(yaml.safe_dump(host_profile(run, algo=algo)))
    code, out, err = attest(
        "reference",
        "--profile",
        profile,
        "--payload",
        payload,
        "--memory",
        str(int(run.launch["ram_size"], 16)),
        "--output",
        "json",
    )
    assert code == 0, err
    return json.loads(out)


def _reference_file(tmp_path: Path, run: RealmRun, lane: RealmLane, algo: str) -> Path:
    path = tmp_path / f"reference-{algo}.json"
    path.write_text(json.dumps(compute_reference(tmp_path, run, payload=lane.payload, algo=algo)))
    return path


def verify(files: dict[str, Path], *, vmi: Path, reference: Path) -> list[dict[str, Any]]:
    code, out, err = attest(
        "verify",
        files["token"],
        "--nonce-file",
        files["nonce"],
        "--vmi",
        vmi,
        "--trust-anchor",
        CPAK,
        "--reference",
        reference,
        "--allow-test-keys",
        "--output",
        "json",
    )
    assert code == 1, out + err
    verdict = json.loads(out)
    assert verdict["verdict"] == "fail"
    checks: list[dict[str, Any]] = verdict["checks"]
    return checks


def failed(checks: list[dict[str, Any]]) -> list[str]:
    """The required checks that failed."""
    return [c["name"] for c in checks if c["required"] and c["status"] == "fail"]


def test_the_rmm_2_claims_and_pins_on_a_real_rmm_1_token(
    realm_lane: RealmLane, tmp_path: Path, case: RealmCase, run: RealmRun, files: dict[str, Path]
) -> None:
    """Issue 22 item 3 on the real RMM 1.0's token: no Realm Instance ID, no MEC policy, nothing
    left uninterpreted; the realm profile pins to 1.0.0, and a 2.0-only pin fails on its check."""
    shown = kubevirt_cca("attest", "show", "--output", "json", str(files["token"]))
    assert shown.returncode == 0, shown.stderr
    realm = json.loads(shown.stdout)["realm"]
    assert (realm["instanceId"], realm["mecPolicy"], realm["otherClaims"]) == (None, None, {})
    reference = _reference_file(tmp_path, run, realm_lane, case.algo)
    base: list[str | Path] = [
        "verify", files["token"], "--nonce-file", files["nonce"], "--vmi", files["vmi"],
        "--trust-anchor", CPAK, "--reference", reference, "--allow-test-keys", "--output", "json",
    ]  # fmt: skip
    code, out, err = attest(*base, "--expected-profile", "tag:arm.com,2023:realm#1.0.0")
    assert code == 0, out + err
    checks = {check["name"]: check for check in json.loads(out)["checks"]}
    assert (checks["realm-profile"]["status"], checks["realm-profile"]["required"]) == (
        "pass",
        True,
    )
    code, out, _ = attest(*base, "--expected-profile", "tag:arm.com,2024:realm#2.0.0")
    assert code == 1 and failed(json.loads(out)["checks"]) == ["realm-profile"]
    code, out, _ = attest(*base, "--expected-instance-id", "01" + "00" * 32)
    assert code == 1 and failed(json.loads(out)["checks"]) == ["realm-instance-id"]
    code, out, _ = attest(*base, "--expected-mec-policy", "shared")
    assert code == 1 and failed(json.loads(out)["checks"]) == ["mec-policy"]
