"""``kubevirt-cca attest verify / show``: exit codes, messages, the JSON interface."""

from __future__ import annotations

import base64
import contextlib
import io
import json
from pathlib import Path
from typing import Any

import cbor2
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubevirt_cca.cli import main
from kubevirt_cca.core.attestation.verify import CHECK_NAMES
from tests.attestation.builder import TokenSpec, build_token, public_pem
from tests.attestation.logbuilder import BOOT_EVENTS, build_log, expected_rems
from tests.cli.run import kubevirt_cca
from tests.conftest import ROOT, shared_path

EXAMPLE_VM = ROOT / "examples" / "vm-cca-params.yaml"
ERROR_PREFIX = "kubevirt-cca attest: error: "


def attest(*args: str | Path) -> tuple[int, str, str]:
    """Run the command in this process (fast enough for property tests)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["attest", *[str(a) for a in args]])
    return code, out.getvalue(), err.getvalue()


def example_rpv() -> bytes:
    manifest = yaml.safe_load(EXAMPLE_VM.read_text())
    annotation = manifest["spec"]["template"]["metadata"]["annotations"][
        "cca.kubevirt.io/launch-security"
    ]
    return base64.b64decode(json.loads(annotation)["personalizationValue"])


@pytest.fixture
def example(spec: TokenSpec) -> TokenSpec:
    """A token of the Realm EXAMPLE_VM asks for: its personalization value, and sha-512."""
    return spec.but(
        rpv=example_rpv(),
        hash_algo="sha-512",
        rim=b"\x22" * 64,
        rems=expected_rems(BOOT_EVENTS, "sha512"),
    )


@pytest.fixture
def files(tmp_path: Path, example: TokenSpec) -> dict[str, Path]:
    chosen = example
    paths = {
        "token": tmp_path / "token.cbor",
        "nonce": tmp_path / "nonce.bin",
        "cpak": tmp_path / "vendor-cpak.pem",
        "log": tmp_path / "ccel.bin",
    }
    paths["log"].write_bytes(build_log(BOOT_EVENTS, area=64 * 1024))
    paths["token"].write_bytes(build_token(chosen))
    paths["nonce"].write_bytes(chosen.nonce)
    paths["cpak"].write_bytes(public_pem(chosen.platform_key))
    return paths


def verify_args(files: dict[str, Path], *extra: str | Path) -> list[str | Path]:
    return [
        "verify",
        files["token"],
        "--nonce-file",
        files["nonce"],
        "--trust-anchor",
        files["cpak"],
        *extra,
    ]


def test_verify_against_the_example_vm_manifest(files: dict[str, Path], example: TokenSpec) -> None:
    result = kubevirt_cca(
        "attest",
        *map(
            str,
            verify_args(
                files,
                "--vmi",
                EXAMPLE_VM,
                "--expected-rim",
                example.rim.hex(),
                "--measurement-log",
                files["log"],
                "--expected-profile",
                "tag:arm.com,2023:realm#1.0.0",
            ),
        ),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("attestation: PASSED\n")
    rmm2_only = ("realm-instance-id", "mec-policy")  # an RMM 1.0 token carries neither
    for name in CHECK_NAMES:
        mark = "[--  ]" if name in rmm2_only else "[ok  ]"
        assert f"{mark} {name}" in result.stdout
    assert "TEST TOKEN" not in result.stdout


def test_a_different_vm_manifest_fails_the_personalization_value(
    files: dict[str, Path], tmp_path: Path
) -> None:
    manifest = yaml.safe_load(EXAMPLE_VM.read_text())
    other = base64.b64encode(b"\x42" * 64).decode()
    manifest["spec"]["template"]["metadata"]["annotations"]["cca.kubevirt.io/launch-security"] = (
        json.dumps({"personalizationValue": other})
    )
    path = tmp_path / "other-vm.yaml"
    path.write_text(yaml.safe_dump(manifest))
    code, out, _ = attest(*verify_args(files, "--vmi", path, "--output", "json"))
    assert code == 1
    report = json.loads(out)
    assert report["verdict"] == "fail"
    failed = [c["name"] for c in report["checks"] if c["status"] == "fail"]
    assert failed == ["personalization-value"]


def test_a_vm_without_personalization_value_expects_zeros(tmp_path: Path, spec: TokenSpec) -> None:
    chosen = spec.but(rpv=bytes(64))
    (tmp_path / "t.cbor").write_bytes(build_token(chosen))
    (tmp_path / "n.bin").write_bytes(chosen.nonce)
    (tmp_path / "k.pem").write_bytes(public_pem(chosen.platform_key))
    vmi = {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": {"name": "r", "labels": {"cca.kubevirt.io/enabled": "true"}},
        "spec": {},
    }
    (tmp_path / "vmi.json").write_text(json.dumps(vmi))
    code, out, err = attest(
        "verify",
        tmp_path / "t.cbor",
        "--nonce-file",
        tmp_path / "n.bin",
        "--trust-anchor",
        tmp_path / "k.pem",
        "--vmi",
        tmp_path / "vmi.json",
    )
    assert code == 0, out + err
    assert "no personalizationValue: all zeros" in out


def test_verify_json_is_the_documented_shape(files: dict[str, Path]) -> None:
    code, out, _ = attest(
        *verify_args(
            files, "--expected-rpv", base64.b64encode(example_rpv()).decode(), "--output", "json"
        )
    )
    assert code == 0
    report = json.loads(out)
    assert set(report) == {
        "schemaVersion",
        "kind",
        "verdict",
        "testToken",
        "checks",
        "token",
        "measurementLog",
    }
    assert report["measurementLog"] is None  # no --measurement-log given
    assert report["schemaVersion"] == "kubevirt-cca.io/v1" and report["verdict"] == "pass"
    assert report["kind"] == "AttestationVerdict"
    assert report["testToken"] is False
    assert [c["name"] for c in report["checks"]] == list(CHECK_NAMES)
    for check in report["checks"]:
        assert set(check) == {"name", "status", "required", "message"}
        assert check["status"] in ("pass", "fail", "not-checked")
    rim = next(c for c in report["checks"] if c["name"] == "initial-measurement")
    assert rim["status"] == "not-checked" and rim["required"] is False
    token = report["token"]
    assert set(token) == {"schemaVersion", "form", "platform", "realm"}
    assert set(token["realm"]) == {
        "algorithm",
        "profile",
        "challenge",
        "personalizationValue",
        "personalizationValueBase64",
        "initialMeasurement",
        "extensibleMeasurements",
        "hashAlgorithm",
        "publicKey",
        "publicKeyEncoding",
        "publicKeyPoint",
        "publicKeyHashAlgorithm",
        "instanceId",
        "mecPolicy",
        "otherClaims",
    }
    assert set(token["platform"]) == {
        "algorithm",
        "profile",
        "challenge",
        "implementationId",
        "instanceId",
        "config",
        "lifecycle",
        "lifecycleState",
        "verificationService",
        "hashAlgorithm",
        "softwareComponents",
        "otherClaims",
    }
    assert base64.b64decode(token["realm"]["personalizationValueBase64"]) == example_rpv()


def test_show_text_and_json(files: dict[str, Path], example: TokenSpec) -> None:
    code, out, _ = attest("show", files["token"])
    assert code == 0
    assert "form: tag-399" in out and "realm token:" in out
    assert f"initialMeasurement: {example.rim.hex()}" in out
    code, out, _ = attest("show", files["token"], "--output", "json")
    assert code == 0
    assert json.loads(out)["realm"]["challenge"] == example.nonce.hex()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--expected-rpv", "not base64!"], "--expected-rpv is not valid standard base64"),
        (["--expected-rpv", base64.b64encode(b"x" * 32).decode()], "decodes to 32 bytes"),
        (["--vmi", "missing.yaml"], "missing.yaml: no such file"),
        (
            ["--expected-rpv", base64.b64encode(bytes(64)).decode(), "--expected-rim", "zz"],
            "--expected-rim is not hexadecimal",
        ),
        (
            ["--expected-rpv", base64.b64encode(bytes(64)).decode(), "--expected-rim", "00" * 20],
            "--expected-rim is 20 bytes",
        ),
    ],
)
def test_unusable_expectations_exit_2(
    files: dict[str, Path], extra: list[str], message: str
) -> None:
    code, out, err = attest(*verify_args(files, *extra))
    assert code == 2 and out == ""
    assert err.startswith(ERROR_PREFIX) and message in err


def test_vmi_that_asks_for_no_realm_or_is_invalid_exits_2(
    files: dict[str, Path], tmp_path: Path
) -> None:
    plain = tmp_path / "plain.yaml"
    plain.write_text("kind: VirtualMachineInstance\nmetadata: {name: p}\nspec: {}\n")
    code, _, err = attest(*verify_args(files, "--vmi", plain))
    assert code == 2 and "does not ask for a Realm" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "kind": "VirtualMachineInstance",
                "metadata": {
                    "name": "b",
                    "labels": {"cca.kubevirt.io/enabled": "true"},
                    "annotations": {
                        "cca.kubevirt.io/launch-security": '{"personalizationValue": "short"}'
                    },
                },
            }
        )
    )
    code, _, err = attest(*verify_args(files, "--vmi", bad))
    assert code == 2
    assert "metadata.annotations[cca.kubevirt.io/launch-security].personalizationValue" in err


@pytest.mark.parametrize("what", ["token", "nonce", "cpak"])
def test_missing_or_bad_files_exit_2(files: dict[str, Path], what: str) -> None:
    files[what].unlink()
    code, _, err = attest(*verify_args(files, "--expected-rpv", "AA=="))
    assert code == 2 and "no such file" in err
    files[what].write_bytes(b"\x01" * 20)
    code, _, err = attest(
        *verify_args(files, "--expected-rpv", base64.b64encode(example_rpv()).decode())
    )
    assert code == 2 and err.startswith(ERROR_PREFIX)
    assert "Traceback" not in err


def test_missing_required_options_is_a_usage_error(files: dict[str, Path]) -> None:
    result = kubevirt_cca(
        "attest",
        "verify",
        str(files["token"]),
        "--nonce-file",
        str(files["nonce"]),
        "--trust-anchor",
        str(files["cpak"]),
    )
    assert result.returncode == 2
    assert "one of the arguments --vmi --expected-rpv is required" in result.stderr


@pytest.mark.shared
def test_a_published_vector_is_a_test_token_unless_allowed(tmp_path: Path) -> None:
    token = shared_path("fixtures", "attestation", "tf-m-tools", "cca_example_token.cbor")
    cpak = shared_path("fixtures", "attestation", "tf-m-tools", "cca_platform.pem")
    import kubevirt_cca.core.attestation.token as t

    realm = t.parse_token(token.read_bytes()).realm_claims
    assert realm is not None
    (tmp_path / "nonce").write_bytes(realm.challenge)
    rpv = base64.b64encode(realm.personalization_value).decode()
    args: list[str | Path] = [
        "verify",
        token,
        "--nonce-file",
        tmp_path / "nonce",
        "--trust-anchor",
        cpak,
        "--expected-rpv",
        rpv,
    ]
    code, out, _ = attest(*args)
    assert code == 1
    assert "warning: this is a TEST TOKEN" in out
    assert "[FAIL] production-keys: this is a test token" in out
    code, out, _ = attest(*args, "--allow-test-keys", "--output", "json")
    assert code == 0
    report = json.loads(out)
    assert report["testToken"] is True and report["verdict"] == "pass"


# --- property tests: whatever the file holds, a clean error ---------------------------------------


def _assert_clean_refusal(code: int, out: str, err: str) -> None:
    assert code == 2, (out, err)
    assert out == ""
    assert err.startswith(ERROR_PREFIX) and err.count("\n") == 1, err
    assert "Traceback" not in err


cbor_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=False)
    | st.binary(max_size=40)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.integers(-5, 45000) | st.text(max_size=5), children, max_size=5)
        | st.builds(cbor2.CBORTag, st.sampled_from([18, 263, 399, 907, 1000]), children)
    ),
    max_leaves=25,
)


def _token_like(children: Any) -> Any:
    """Near-miss tokens: the right tags and keys around arbitrary content."""
    sign1 = st.builds(
        lambda parts: cbor2.CBORTag(18, parts),
        st.lists(
            children | st.binary(max_size=30).map(lambda b: cbor2.dumps(b)), min_size=0, max_size=5
        ),
    )
    inner = st.one_of(sign1.map(cbor2.dumps), children.map(cbor2.dumps), st.binary(max_size=30))
    return st.one_of(
        st.builds(lambda p, r: cbor2.CBORTag(399, {44234: p, 44241: r}), inner, inner),
        st.builds(
            lambda p, r: cbor2.CBORTag(907, {44234: [263, p], 44241: [263, r]}), inner, inner
        ),
        sign1,
    )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory, platform_key: Any) -> Path:
    path = tmp_path_factory.mktemp("property")
    (path / "nonce").write_bytes(b"\x01" * 64)
    (path / "cpak.pem").write_bytes(public_pem(platform_key))
    return path


def _show_and_verify(workdir: Path, data: bytes) -> None:
    token = workdir / "token.cbor"
    token.write_bytes(data)
    _assert_clean_refusal(*attest("show", token))
    _assert_clean_refusal(
        *attest(
            "verify",
            token,
            "--nonce-file",
            workdir / "nonce",
            "--trust-anchor",
            workdir / "cpak.pem",
            "--expected-rpv",
            base64.b64encode(bytes(64)).decode(),
        )
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_give_a_clean_error(workdir: Path, data: bytes) -> None:
    _show_and_verify(workdir, data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=cbor_values | _token_like(cbor_values))
def test_arbitrary_cbor_gives_a_clean_error(workdir: Path, value: Any) -> None:
    _show_and_verify(workdir, cbor2.dumps(value))


def test_show_prints_odd_claims_as_strict_json(tmp_path: Path, spec: TokenSpec) -> None:
    def refuse(constant: str) -> None:
        raise AssertionError(f"non-standard JSON constant {constant}")

    # Claims kubevirt-cca does not interpret (44243 and 256 are RMM 2.0's MEC policy and
    # instance id since December 2026, checked in test_rmm2_token.py).
    odd = {44298: float("nan"), 44297: b"\x01\x02", 44299: cbor2.CBORTag(1000, [1, "x"])}
    path = tmp_path / "odd.cbor"
    path.write_bytes(build_token(spec.but(extra_realm_claims=odd)))
    code, out, _ = attest("show", path, "--output", "json")
    assert code == 0
    other = json.loads(out, parse_constant=refuse)["realm"]["otherClaims"]
    assert other == {"44298": "nan", "44297": "0102", "44299": {"tag": 1000, "value": [1, "x"]}}


def test_a_vm_whose_request_admission_would_refuse_fails_verification(
    tmp_path: Path, spec: TokenSpec
) -> None:
    """Issue 13: the label on the template but the parameters on the VM itself. Read naively,
    that VM "asks for no personalization value" and a token with all zeros would pass."""
    chosen = spec.but(rpv=bytes(64))
    (tmp_path / "t.cbor").write_bytes(build_token(chosen))
    (tmp_path / "n.bin").write_bytes(chosen.nonce)
    (tmp_path / "k.pem").write_bytes(public_pem(chosen.platform_key))
    manifest = yaml.safe_load(EXAMPLE_VM.read_text())
    template_meta = manifest["spec"]["template"]["metadata"]
    manifest["metadata"]["annotations"] = template_meta.pop("annotations")
    (tmp_path / "vm.yaml").write_text(yaml.safe_dump(manifest))
    result = kubevirt_cca(
        "attest",
        "verify",
        str(tmp_path / "t.cbor"),
        "--nonce-file",
        str(tmp_path / "n.bin"),
        "--trust-anchor",
        str(tmp_path / "k.pem"),
        "--vmi",
        str(tmp_path / "vm.yaml"),
        "--output",
        "json",
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    assert (
        "metadata.annotations[cca.kubevirt.io/launch-security]: "
        "cca.kubevirt.io/launch-security was found on the VirtualMachine's own metadata"
    ) in result.stderr
    assert "Traceback" not in result.stderr


HUGE = {
    "bignum-claim": {44299: 2**20000},
    "negative-bignum-claim": {44299: -(2**30000)},
    "bignum-key": {2**20000: 1},
    "huge-profile-int": {265: 2**9000},
    "bignum-in-a-list": {44299: [1, 2**64, 2**20000]},
    "nested-bignum-tag": {44299: cbor2.CBORTag(1000, {"x": 2**20000})},
}


@pytest.mark.parametrize("claims", list(HUGE.values()), ids=list(HUGE))
@pytest.mark.parametrize("output", ["text", "json"])
def test_huge_integers_never_give_a_traceback(
    tmp_path: Path, spec: TokenSpec, claims: dict[Any, Any], output: str
) -> None:
    """Issue 13: integers of thousands of digits (CBOR bignums) in a signed token, shown and
    verified as a person would, over the command line: one line and exit 2, or an answer
    whose JSON is valid."""
    chosen = spec.but(extra_realm_claims=claims)
    token = tmp_path / "huge.cbor"
    token.write_bytes(build_token(chosen))
    (tmp_path / "n.bin").write_bytes(chosen.nonce)
    (tmp_path / "k.pem").write_bytes(public_pem(chosen.platform_key))
    for args in (
        ["show", str(token)],
        [
            "verify",
            str(token),
            "--nonce-file",
            str(tmp_path / "n.bin"),
            "--trust-anchor",
            str(tmp_path / "k.pem"),
            "--expected-rpv",
            base64.b64encode(chosen.rpv).decode(),
        ],
    ):
        result = kubevirt_cca("attest", *args, "--output", output)
        assert "Traceback" not in result.stderr, result.stderr
        if result.returncode == 2:
            assert result.stdout == ""
            assert result.stderr.startswith(ERROR_PREFIX) and result.stderr.count("\n") == 1
            assert "integer" in result.stderr
        else:
            assert result.returncode in (0, 1), result.stderr
            if output == "json":
                json.loads(result.stdout)
