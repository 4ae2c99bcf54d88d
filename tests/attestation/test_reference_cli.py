"""``attest reference``, ``verify --reference / --measurement-log`` and ``collect --log-out``
as a person runs them: exit codes, one-line errors naming the field, JSON that parses."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.attestation.builder import TokenSpec, build_token, public_pem
from tests.attestation.fakeconfigfs import FakeTsm
from tests.attestation.logbuilder import BOOT_EVENTS, build_log, expected_rems
from tests.attestation.test_cli import attest
from tests.cli.run import kubevirt_cca
from tests.conftest import ROOT

PROFILES = ROOT / "examples" / "attest-profiles"
PROFILE = PROFILES / "rmm-1.0-sha256.yaml"
PREFIX = "kubevirt-cca attest: error: "
CCEL = "sys/firmware/acpi/tables/data/CCEL"


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    paths = {name: tmp_path / f"{name}.bin" for name in ("firmware", "kernel", "initrd", "dtb")}
    paths["firmware"].write_bytes(bytes(range(256)) * 64)  # 16 KiB
    paths["kernel"].write_bytes(b"\x00" * 0x38 + b"ARM\x64" + b"k" * 9000)
    paths["initrd"].write_bytes(b"initrd" * 1000)
    paths["dtb"].write_bytes(b"\xd0\x0d\xfe\xed" + b"\x00" * 2000)
    return paths


def reference(*args: str | Path) -> tuple[int, str, str]:
    return attest("reference", *args)


def firmware_args(inputs: dict[str, Path], *extra: str | Path) -> list[str | Path]:
    return [
        "--profile",
        PROFILE,
        "--firmware",
        inputs["firmware"],
        "--dtb",
        inputs["dtb"],
        "--memory",
        "1Gi",
        *extra,
    ]


def test_reference_as_a_process_text_and_json(inputs: dict[str, Path], tmp_path: Path) -> None:
    args = [str(a) for a in firmware_args(inputs)]
    text = kubevirt_cca("attest", "reference", *args)
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("RIM (sha256): ")
    assert "firmware: 0x0 (16384 bytes)" in text.stdout
    as_json = kubevirt_cca(
        "attest", "reference", *args, "--output", "json", "--corim", str(tmp_path / "corim.json")
    )
    assert as_json.returncode == 0, as_json.stderr
    out = json.loads(as_json.stdout)
    assert set(out) == {"rim", "measurementAlgo"}
    assert out["measurementAlgo"] == "sha256" and len(bytes.fromhex(out["rim"])) == 32
    assert out["rim"] == out["rim"].lower() and out["rim"] in text.stdout
    comid = json.loads((tmp_path / "corim.json").read_text())
    digest = comid["triples"]["reference-triples"][0][1][0]["mval"]["digests"][0]
    assert digest == "sha-256;" + base64.b64encode(bytes.fromhex(out["rim"])).decode()


def test_trace_lists_steps_in_order(inputs: dict[str, Path]) -> None:
    code, out, err = reference(
        "--profile",
        PROFILES / "rmm-1.0-sha512-sve.yaml",
        "--kernel",
        inputs["kernel"],
        "--initrd",
        inputs["initrd"],
        "--dtb",
        inputs["dtb"],
        "--memory",
        "256Mi",
        "--output",
        "json",
        "--trace",
    )
    assert code == 0, err
    data = json.loads(out)
    steps = data["steps"]
    kinds = [s["kind"] for s in steps]
    assert kinds[0] == "realm-create" and kinds[-1] == "rec"
    assert kinds[1:129] == ["ripas"] * 128  # 256 MiB in 2 MiB blocks
    data_steps = [s for s in steps if s["kind"] == "data"]
    assert [s["ipa"] for s in data_steps][:3] == [0x40000000, 0x40001000, 0x40002000]
    assert all(len(bytes.fromhex(s["contentDigest"])) == 64 for s in data_steps)
    assert set(steps[1]) == {"kind", "rim", "base", "top"}
    assert steps[-1]["pc"] == 0x40000000 and len(steps[-1]["gprs"]) == 8
    assert steps[-1]["gprs"][0] == data_steps[-1]["ipa"]  # x0: the DTB, measured last
    assert steps[-1]["rim"] == data["rim"] and data["measurementAlgo"] == "sha512"


def test_rmm2_sha384_gives_48_bytes(inputs: dict[str, Path]) -> None:
    code, out, _ = reference(
        "--profile",
        PROFILES / "rmm-2.0-sha384.yaml",
        "--firmware",
        inputs["firmware"],
        "--dtb",
        inputs["dtb"],
        "--memory",
        "2Gi",
        "--output",
        "json",
    )
    assert code == 0
    assert len(bytes.fromhex(json.loads(out)["rim"])) == 48


def test_rmm2_text_names_device_assignment_and_mec_and_each_changes_the_rim(
    inputs: dict[str, Path], tmp_path: Path
) -> None:
    base = yaml.safe_load((PROFILES / "rmm-2.0-sha384.yaml").read_text())
    rims = set()
    for da in (True, False):
        for mec in ("shared", "private"):
            profile = tmp_path / f"p-{da}-{mec}.yaml"
            profile.write_text(yaml.safe_dump({**base, "deviceAssignment": da, "mecPolicy": mec}))
            args: list[str | Path] = ["--profile", profile, "--firmware", inputs["firmware"]]
            code, out, err = reference(*args, "--dtb", inputs["dtb"], "--memory", "2Gi")
            assert code == 0, err
            assert f"{'DA' if da else 'no DA'}, MEC {mec}" in out.splitlines()[1]
            rims.add(out.splitlines()[0])
    assert len(rims) == 4


def test_every_example_profile_is_valid(inputs: dict[str, Path]) -> None:
    found = sorted(PROFILES.glob("*.yaml"))
    assert len(found) >= 3
    for path in found:
        code, _, err = reference(
            "--profile",
            path,
            "--firmware",
            inputs["firmware"],
            "--dtb",
            inputs["dtb"],
            "--memory",
            "1Gi",
        )
        assert code == 0, f"{path.name}: {err}"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"profile": "missing.yaml"}, "--profile"),
        ({"profile_text": "rmmVersion: [\n"}, "--profile"),
        ({"profile_text": "- a list\n"}, "expected a mapping"),
        ({"profile_key": ("ipaBits", 60)}, "profile.ipaBits"),
        ({"profile_key": ("measurementAlgo", "sha1")}, "profile.measurementAlgo"),
        ({"memory": "lots"}, "--memory"),
        ({"memory": "1.00001Gi"}, "--memory"),
        ({"dtb_bytes": b""}, "--dtb"),
        ({"dtb_dir": True}, "--dtb"),
        ({"memory": "16Mi", "boot": "kernel-large"}, "--memory"),
        ({"boot": "initrd-with-firmware"}, "--initrd"),
        ({"profile_key": ("deviceAssignment", True)}, "profile.deviceAssignment"),  # 1.0
        ({"profile_key": ("mecPolicy", "private")}, "profile.mecPolicy"),  # 1.0
    ],
)
def test_bad_input_exits_2_with_one_line_naming_the_field(
    inputs: dict[str, Path], tmp_path: Path, change: dict[str, Any], field: str
) -> None:
    profile: Path = PROFILE
    if "profile" in change:
        profile = tmp_path / change["profile"]
    if "profile_text" in change:
        profile = tmp_path / "p.yaml"
        profile.write_text(change["profile_text"])
    if "profile_key" in change:
        data = yaml.safe_load(PROFILE.read_text())
        key, value = change["profile_key"]
        data[key] = value
        profile = tmp_path / "p.yaml"
        profile.write_text(yaml.safe_dump(data))
    dtb = inputs["dtb"]
    if "dtb_bytes" in change:
        dtb.write_bytes(change["dtb_bytes"])
    if change.get("dtb_dir"):
        dtb = tmp_path
    boot: list[str | Path] = ["--firmware", inputs["firmware"]]
    if change.get("boot") == "kernel-large":
        (tmp_path / "big").write_bytes(bytes(17 * 2**20))
        boot = ["--kernel", tmp_path / "big"]
    if change.get("boot") == "initrd-with-firmware":
        boot += ["--initrd", inputs["initrd"]]
    result = kubevirt_cca(
        "attest",
        "reference",
        "--profile",
        str(profile),
        *map(str, boot),
        "--dtb",
        str(dtb),
        "--memory",
        change.get("memory", "1Gi"),
        "--output",
        "json",
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(PREFIX) and field in lines[0]
    assert "Traceback" not in result.stderr


def test_payload_needs_no_dtb_and_refuses_one(inputs: dict[str, Path]) -> None:
    base: list[str | Path] = [
        "--profile",
        PROFILE,
        "--payload",
        inputs["kernel"],
        "--memory",
        "2Mi",
    ]
    code, out, err = reference(*base, "--output", "json")
    assert code == 0, err
    assert json.loads(out)["measurementAlgo"] == "sha256"
    cases: list[tuple[list[str | Path], str]] = [
        (["--dtb", inputs["dtb"]], "--dtb"),
        (["--initrd", inputs["initrd"]], "--initrd"),
    ]
    for extra, field in cases:
        code, out, err = reference(*base, *extra)
        assert (code, out) == (2, "")
        assert err.startswith(PREFIX + field) and "--payload" in err, err


def test_firmware_or_kernel_without_a_dtb_names_it(inputs: dict[str, Path]) -> None:
    for boot in ("--firmware", "--kernel"):
        code, out, err = reference("--profile", PROFILE, boot, inputs[boot[2:]], "--memory", "1Gi")
        assert (code, out) == (2, "")
        assert (
            err
            == PREFIX + "--dtb: required with --firmware or --kernel: the DTB the VM boots with\n"
        )


def test_firmware_and_kernel_together_is_a_usage_error(inputs: dict[str, Path]) -> None:
    code = kubevirt_cca(
        "attest",
        "reference",
        "--profile",
        str(PROFILE),
        "--firmware",
        str(inputs["firmware"]),
        "--kernel",
        str(inputs["kernel"]),
        "--dtb",
        str(inputs["dtb"]),
        "--memory",
        "1Gi",
    )
    assert code.returncode == 2
    assert "not allowed with argument --firmware" in code.stderr.splitlines()[-1]


profile_values = st.dictionaries(
    st.sampled_from(
        [
            "rmmVersion",
            "measurementAlgo",
            "ipaBits",
            "lpa2",
            "sveVectorLength",
            "breakpoints",
            "watchpoints",
            "pmuCounters",
            "other",
        ]
    ),
    st.none()
    | st.booleans()
    | st.integers(-5, 3000)
    | st.sampled_from(["1.0", "2.0", "sha256", "sha384", "sha512", "x"])
    | st.lists(st.integers(), max_size=2),
)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(values=profile_values)
def test_any_profile_gives_json_or_one_error_line(
    inputs: dict[str, Path], tmp_path: Path, values: dict[str, Any]
) -> None:
    base = yaml.safe_load(PROFILE.read_text())
    base.update(values)
    path = tmp_path / "any.yaml"
    path.write_text(yaml.safe_dump(base))
    code, out, err = reference(
        "--profile",
        path,
        "--firmware",
        inputs["firmware"],
        "--dtb",
        inputs["dtb"],
        "--memory",
        "1Gi",
        "--output",
        "json",
    )
    if code == 0:
        assert set(json.loads(out)) == {"rim", "measurementAlgo"}
    else:
        assert code == 2 and out == ""
        assert len(err.splitlines()) == 1 and err.startswith(PREFIX)


# --- verify --reference and --measurement-log ----------------------------------------------------


def signed_files(tmp_path: Path, spec: TokenSpec) -> list[str | Path]:
    (tmp_path / "t.cbor").write_bytes(build_token(spec))
    (tmp_path / "n.bin").write_bytes(spec.nonce)
    (tmp_path / "k.pem").write_bytes(public_pem(spec.platform_key))
    return [
        "verify",
        tmp_path / "t.cbor",
        "--nonce-file",
        tmp_path / "n.bin",
        "--trust-anchor",
        tmp_path / "k.pem",
        "--expected-rpv",
        base64.b64encode(spec.rpv).decode(),
    ]


def test_verify_against_a_computed_reference(
    inputs: dict[str, Path], tmp_path: Path, spec: TokenSpec
) -> None:
    code, out, _ = reference(*firmware_args(inputs, "--output", "json"))
    assert code == 0
    (tmp_path / "ref.json").write_text(out)
    rim = bytes.fromhex(json.loads(out)["rim"])
    good = signed_files(tmp_path, spec.but(rim=rim))
    code, out, err = attest(*good, "--reference", tmp_path / "ref.json", "--output", "json")
    assert code == 0, out + err
    check = next(c for c in json.loads(out)["checks"] if c["name"] == "initial-measurement")
    assert check["status"] == "pass"
    # Another RIM: the Realm started from something else.
    other = signed_files(tmp_path, spec.but(rim=bytes(32)))
    code, out, _ = attest(*other, "--reference", tmp_path / "ref.json")
    assert code == 1 and "[FAIL] initial-measurement" in out


def test_verify_refuses_a_reference_of_another_algorithm(
    inputs: dict[str, Path], tmp_path: Path, spec: TokenSpec
) -> None:
    code, out, _ = reference(
        "--profile",
        PROFILES / "rmm-1.0-sha512-sve.yaml",
        "--firmware",
        inputs["firmware"],
        "--dtb",
        inputs["dtb"],
        "--memory",
        "1Gi",
        "--output",
        "json",
    )
    (tmp_path / "ref.json").write_text(out)
    files = signed_files(tmp_path, spec)
    code, out, _ = attest(*files, "--reference", tmp_path / "ref.json")
    assert code == 1
    assert "the reference RIM is sha512, but this Realm measures with sha-256" in out


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ("not json", "--reference"),
        ('{"rim": "00", "measurementAlgo": "sha256"}', "rim"),
        ('{"rim": "' + "00" * 32 + '"}', "measurementAlgo"),
    ],
)
def test_verify_with_a_bad_reference_exits_2(
    tmp_path: Path, spec: TokenSpec, content: str, field: str
) -> None:
    (tmp_path / "ref.json").write_text(content)
    code, out, err = attest(*signed_files(tmp_path, spec), "--reference", tmp_path / "ref.json")
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and field in err


def test_verify_reports_each_rem_against_the_log(tmp_path: Path, spec: TokenSpec) -> None:
    (tmp_path / "ccel.bin").write_bytes(build_log(BOOT_EVENTS, area=65536))
    chosen = spec.but(rems=expected_rems(BOOT_EVENTS, "sha256"))
    code, out, err = attest(
        *signed_files(tmp_path, chosen),
        "--measurement-log",
        tmp_path / "ccel.bin",
        "--output",
        "json",
    )
    assert code == 0, out + err
    report = json.loads(out)
    log = report["measurementLog"]
    assert [r["index"] for r in log] == [0, 1, 2, 3]
    assert [r["explained"] for r in log] == [True] * 4
    assert log[2]["events"][0]["type"] == "EV_EVENT_TAG"
    assert log[2]["events"][0]["description"] == "tag 0x8f3b22ed: Linux initrd"
    assert log[0]["tokenValue"] == log[0]["replayedValue"]
    code, text, _ = attest(
        *signed_files(tmp_path, chosen), "--measurement-log", tmp_path / "ccel.bin"
    )
    assert "[ok  ] measurement-log" in text
    assert "REM1: explained by 2 logged event(s)" in text
    assert "    - EV_EFI_ACTION: Calling EFI Application from Boot Option" in text
    # A REM the log does not explain fails the verdict.
    wrong = chosen.but(rems=(*chosen.rems[:3], b"\x01" * 32))
    code, text, _ = attest(
        *signed_files(tmp_path, wrong), "--measurement-log", tmp_path / "ccel.bin"
    )
    assert code == 1 and "[FAIL] measurement-log" in text and "REM3: NOT explained" in text


def test_verify_with_a_truncated_log_exits_2(tmp_path: Path, spec: TokenSpec) -> None:
    (tmp_path / "ccel.bin").write_bytes(build_log(BOOT_EVENTS)[:150])
    code, out, err = attest(
        *signed_files(tmp_path, spec), "--measurement-log", tmp_path / "ccel.bin"
    )
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and "--measurement-log" in err and "ends inside" in err


# --- collect --log-out ---------------------------------------------------------------------------


def collect_with_log_out(tmp_path: Path, root: Path, spec: TokenSpec) -> tuple[int, str, FakeTsm]:
    """``attest collect --log-out log.bin`` over the guest at root, a fake TSM answering spec."""
    (tmp_path / "nonce.bin").write_bytes(b"\x07" * 64)
    with FakeTsm(root, respond=lambda nonce: build_token(spec.but(nonce=nonce))) as tsm:
        code, _, err = attest(
            "collect",
            "--nonce-file",
            tmp_path / "nonce.bin",
            "--out",
            tmp_path / "t.cbor",
            "--log-out",
            tmp_path / "log.bin",
            "--root",
            root,
        )
    return code, err, tsm


def test_collect_saves_the_log_beside_the_token(tmp_path: Path, spec: TokenSpec) -> None:
    root = tmp_path / "guest"
    log = build_log(BOOT_EVENTS, area=65536)
    (root / CCEL).parent.mkdir(parents=True)
    (root / CCEL).write_bytes(log)
    code, err, _ = collect_with_log_out(tmp_path, root, spec)
    assert code == 0, err
    assert (tmp_path / "log.bin").read_bytes() == log
    assert "wrote the 65536-byte measurement log" in err


@pytest.mark.parametrize(
    ("acpi", "reason"), [(False, "booted without ACPI"), (True, "published no CCEL table")]
)
def test_collect_without_a_log_writes_nothing(
    tmp_path: Path, spec: TokenSpec, acpi: bool, reason: str
) -> None:
    root = tmp_path / "guest"
    if acpi:
        (root / "sys/firmware/acpi/tables").mkdir(parents=True)
    code, err, tsm = collect_with_log_out(tmp_path, root, spec)
    assert code == 1 and reason in err and len(err.splitlines()) == 1
    assert not (tmp_path / "t.cbor").exists() and not (tmp_path / "log.bin").exists()
    assert tsm.inblobs == []  # no token was even requested
