"""Issue 21, items 7, 10 and 12 for ``attest``, as a person runs it (a subprocess): a VM
manifest, a host profile or a JWK holding a number JSON cannot carry or a key given twice is
unusable input (exit 2, one line naming the field, no traceback), also with
``--output json``; an unquoted ``rmmVersion: 1.0`` says to quote it; a personalization value
given as 128 hex digits says so and shows the base64 to give instead."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.attestation.builder import TokenSpec, build_token, public_pem
from tests.cli.run import kubevirt_cca
from tests.conftest import ROOT

PROFILE = (ROOT / "examples" / "attest-profiles" / "rmm-1.0-sha256.yaml").read_text()
EXAMPLE_VM = (ROOT / "examples" / "vm-cca-params.yaml").read_text()
RPV = bytes(range(64))


def assert_unusable(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("kubevirt-cca attest: error: ")
    for word in words:
        assert word in lines[0]


@pytest.fixture
def token_files(tmp_path: Path, spec: TokenSpec) -> dict[str, Path]:
    chosen = spec.but(rpv=RPV)
    paths = {
        "token": tmp_path / "token.cbor",
        "nonce": tmp_path / "nonce.bin",
        "cpak": tmp_path / "cpak.pem",
    }
    paths["token"].write_bytes(build_token(chosen))
    paths["nonce"].write_bytes(chosen.nonce)
    paths["cpak"].write_bytes(public_pem(chosen.platform_key))
    return paths


def verify(files: dict[str, Path], *extra: str) -> subprocess.CompletedProcess[str]:
    return kubevirt_cca(
        "attest",
        "verify",
        str(files["token"]),
        "--nonce-file",
        str(files["nonce"]),
        "--trust-anchor",
        str(files["cpak"]),
        *extra,
    )


VM_CASES = {
    "long-integer": (
        EXAMPLE_VM.replace("spec:\n", "spec:\n  n: " + "9" * 5000 + "\n", 1),
        "spec.n: an integer of 5000 digits is too long to read",
    ),
    "nan": (
        EXAMPLE_VM.replace("spec:\n", "spec:\n  n: .NaN\n", 1),
        "spec.n: NaN is not a number JSON can hold",
    ),
    "duplicate-metadata": (
        EXAMPLE_VM + "metadata:\n  name: plain\n",
        'mapping key "metadata" already defined at line',
    ),
}


@pytest.mark.parametrize("output", ["text", "json"])
@pytest.mark.parametrize("case", list(VM_CASES))
def test_verify_refuses_a_hostile_vm_manifest(
    token_files: dict[str, Path], tmp_path: Path, case: str, output: str
) -> None:
    text, words = VM_CASES[case]
    vmi = tmp_path / "vm.yaml"
    vmi.write_text(text)
    assert_unusable(verify(token_files, "--vmi", str(vmi), "--output", output), str(vmi), words)


def test_verify_refuses_a_jwk_with_a_long_integer(
    token_files: dict[str, Path], tmp_path: Path
) -> None:
    jwk = tmp_path / "anchor.json"
    jwk.write_text('{"kty": "EC", "crv": "P-256", "n": ' + "1" * 5000 + "}")
    done = verify(
        token_files, "--expected-rpv", base64.b64encode(RPV).decode(), "--trust-anchor", str(jwk)
    )
    assert_unusable(done, f"trust anchor {jwk}: n: an integer of 5000 digits")


def test_expected_rpv_in_hex_says_so_with_the_base64(token_files: dict[str, Path]) -> None:
    done = verify(token_files, "--expected-rpv", RPV.hex(), "--output", "json")
    assert_unusable(
        done,
        "--expected-rpv decodes to 96 bytes; expected exactly 64",
        "it looks like hex (128 hex digits are 64 bytes): their base64 is "
        + base64.b64encode(RPV).decode(),
    )


def test_the_hex_hint_gives_a_value_that_verifies(token_files: dict[str, Path]) -> None:
    """The base64 the message shows is the one to give: with it the token verifies."""
    hint = verify(token_files, "--expected-rpv", RPV.hex().upper()).stderr
    shown = hint.rsplit("their base64 is ", 1)[1].strip()
    done = verify(token_files, "--expected-rpv", shown, "--output", "json")
    checks = {c["name"]: c["status"] for c in json.loads(done.stdout)["checks"]}
    assert checks["personalization-value"] == "pass"


# --- attest reference --profile ----------------------------------------------------------------


@pytest.fixture
def launch_inputs(tmp_path: Path) -> list[str]:
    firmware, dtb = tmp_path / "fw.bin", tmp_path / "vm.dtb"
    firmware.write_bytes(bytes(range(256)) * 64)
    dtb.write_bytes(b"\xd0\x0d\xfe\xed" + b"\x00" * 2000)
    return ["--firmware", str(firmware), "--dtb", str(dtb), "--memory", "1Gi"]


PROFILE_CASES = {
    "unquoted-rmm-version": (
        PROFILE.replace('rmmVersion: "1.0"', "rmmVersion: 1.0"),
        "profile.rmmVersion: YAML read 1.0 as a number; the value is a string: quote it "
        '(rmmVersion: "1.0")',
    ),
    "unquoted-rmm-version-2": (
        PROFILE.replace('rmmVersion: "1.0"', "rmmVersion: 2.0").replace("sha256", "sha384"),
        'the value is a string: quote it (rmmVersion: "2.0")',
    ),
    "long-integer": (
        PROFILE.replace("ipaBits: 48", "ipaBits: " + "4" * 5000),
        "ipaBits: an integer of 5000 digits is too long to read",
    ),
    "long-hexadecimal": (
        PROFILE.replace("ipaBits: 48", "ipaBits: 0x" + "f" * 4000),
        "ipaBits: an integer is too long to read",
    ),
    "inf": (PROFILE.replace("ipaBits: 48", "ipaBits: .inf"), "ipaBits: +Inf is not a number"),
    "duplicate-key": (
        PROFILE + "ipaBits: 52\n",
        'not valid YAML: mapping key "ipaBits" already defined at line',
    ),
}


@pytest.mark.parametrize("output", ["text", "json"])
@pytest.mark.parametrize("case", list(PROFILE_CASES))
def test_reference_refuses_a_hostile_profile(
    tmp_path: Path, launch_inputs: list[str], case: str, output: str
) -> None:
    text, words = PROFILE_CASES[case]
    profile = tmp_path / "host.yaml"
    profile.write_text(text)
    done = kubevirt_cca(
        "attest", "reference", "--profile", str(profile), *launch_inputs, "--output", output
    )
    assert_unusable(done, f"--profile {profile}: ", words)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["show", "-"], "token standard input: larger than 65536 bytes"),
        (["show", "/dev/zero"], "token /dev/zero: larger than 65536 bytes"),
    ],
)
def test_endless_inputs_are_read_to_their_bound(args: list[str], words: str) -> None:
    """Issue 21 item 8 for attest: standard input and devices too."""
    with open("/dev/zero", "rb") as endless:
        done = subprocess.run(
            [sys.executable, "-m", "kubevirt_cca", "attest", *args],
            stdin=endless,
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
            check=False,
        )
    assert_unusable(done, words)


def test_reference_refuses_a_memory_no_quantity_can_say(
    launch_inputs: list[str], tmp_path: Path
) -> None:
    profile = tmp_path / "host.yaml"
    profile.write_text(PROFILE)
    inputs = [*launch_inputs[:-1], "9" * 400 + "Gi"]
    done = kubevirt_cca("attest", "reference", "--profile", str(profile), *inputs)
    assert_unusable(done, "--memory: '9999", "is more memory than a quantity can say (at most 8Ei)")
