"""``kubevirt-cca detect``: text and JSON report, exit 0 capable / 1 not."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from tests.cli.run import kubevirt_cca
from tests.conftest import shared_path


def domcaps(name: str) -> str:
    return str(shared_path("fixtures", "kubevirt", "domcapabilities", name))


def fake_host(tmp_path: Path, *, cca: bool) -> Path:
    (tmp_path / "proc/sys/kernel").mkdir(parents=True)
    (tmp_path / "proc/sys/kernel/arch").write_text("aarch64\n")
    if cca:
        (tmp_path / "dev").mkdir()
        (tmp_path / "dev/kvm").write_text("")
        (tmp_path / "sys/module/kvm/parameters").mkdir(parents=True)
        (tmp_path / "sys/module/kvm/parameters/kvm_cap_arm_rmi").write_text("1\n")
    return tmp_path


def test_capable_json(tmp_path: Path) -> None:
    done = kubevirt_cca(
        "detect",
        "--domcaps",
        domcaps("aarch64-cca.xml"),
        "--root",
        str(fake_host(tmp_path, cca=True)),
        "--output",
        "json",
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    # DESIGN.md's five keys, and issue 22's effective algorithm beside them, with the report
    # envelope's keys (docs/cli.md) added around them.
    assert set(report) == {
        "schemaVersion",
        "kind",
        "verdict",
        "checks",
        "capable",
        "measurementAlgorithms",
        "effectiveMeasurementAlgorithm",
        "reasons",
        "evidence",
        "checkedAt",
    }
    assert report["capable"] is True
    # libvirt lists sha256 and sha512; without QEMU's answer only the fixed sha512 is a choice.
    assert report["measurementAlgorithms"] == ["sha512"]
    assert report["effectiveMeasurementAlgorithm"] == "sha512"
    assert report["evidence"]["libvirt"]["measurementAlgorithms"] == ["sha256", "sha512"]
    assert report["reasons"] == []
    assert report["evidence"]["host"]["architecture"] == "aarch64"
    assert report["evidence"]["host"]["devKvm"] is True
    assert report["checkedAt"].endswith("Z")
    assert (report["schemaVersion"], report["kind"], report["verdict"]) == (
        "kubevirt-cca.io/v1",
        "DetectionReport",
        "pass",
    )
    assert [(c["name"], c["status"]) for c in report["checks"]] == [
        ("libvirt-cca", "pass"),
        ("qemu-rme-guest", "not-checked"),
    ]


def test_not_capable_text(tmp_path: Path) -> None:
    done = kubevirt_cca(
        "detect",
        "--domcaps",
        domcaps("aarch64-no-cca.xml"),
        "--root",
        str(fake_host(tmp_path, cca=False)),
    )
    assert done.returncode == 1
    assert done.stdout.startswith("CCA capable: no\nwhy not:\n")
    assert "this libvirt build does not know Arm CCA" in done.stdout
    assert "no /dev/kvm" in done.stdout


@pytest.mark.parametrize(
    "name", ["aarch64-cca-no-algo-enum.xml", "aarch64-cca-empty-algo-enum.xml"]
)
def test_capable_without_algorithms(tmp_path: Path, name: str) -> None:
    done = kubevirt_cca("detect", "--domcaps", domcaps(name), "--root", str(tmp_path))
    assert done.returncode == 0
    assert "measurement algorithms: none listed" in done.stdout
    assert (
        "effective measurement algorithm (a Realm that asks for none): unknown (the platform's own)"
    ) in done.stdout


def test_nvidia_text_names_the_fixed_algorithm(tmp_path: Path) -> None:
    from tests.conftest import DATA

    done = kubevirt_cca(
        "detect",
        "--domcaps",
        str(DATA / "domcapabilities" / "aarch64-nvidia-cca.xml"),
        "--root",
        str(fake_host(tmp_path, cca=True)),
    )
    assert done.returncode == 0, done.stderr
    assert "measurement algorithms: sha512\n" in done.stdout
    assert "effective measurement algorithm (a Realm that asks for none): sha512\n" in done.stdout
    assert '"launchSecurity": "yes"' in done.stdout and '"sectypes": ["cca"]' in done.stdout


def test_disagreeing_libvirt_exits_1_with_the_reason(tmp_path: Path) -> None:
    from tests.conftest import DATA

    done = kubevirt_cca(
        "detect",
        "--domcaps",
        str(DATA / "domcapabilities" / "aarch64-cca-launchsecurity-no.xml"),
        "--root",
        str(fake_host(tmp_path, cca=True)),
    )
    assert done.returncode == 1
    assert "  - libvirt's two answers disagree: <cca supported='yes'>, but its" in done.stdout
    assert "Traceback" not in done.stderr


def test_failing_command_is_a_reason_not_a_crash(tmp_path: Path) -> None:
    script = tmp_path / "fake-virsh"
    script.write_text("#!/bin/sh\necho 'error: failed to connect to the hypervisor' >&2\nexit 1\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    done = kubevirt_cca(
        "detect", "--domcaps-command", str(script), "--root", str(tmp_path), "--output", "json"
    )
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["capable"] is False
    assert any("failed to connect to the hypervisor" in r for r in report["reasons"])
    assert report["verdict"] == "fail"
    libvirt = report["checks"][0]
    assert (libvirt["name"], libvirt["status"]) == ("libvirt-cca", "fail")
    assert libvirt["details"] == report["reasons"]


def test_command_output_is_parsed(tmp_path: Path) -> None:
    script = tmp_path / "fake-virsh"
    script.write_text(f"#!/bin/sh\ncat {domcaps('aarch64-cca.xml')}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    done = kubevirt_cca("detect", "--domcaps-command", str(script), "--root", str(tmp_path))
    assert done.returncode == 0, done.stdout


def test_missing_virsh(tmp_path: Path) -> None:
    done = kubevirt_cca(
        "detect", "--domcaps-command", "no-such-virsh domcapabilities", "--root", str(tmp_path)
    )
    assert done.returncode == 1
    assert "no-such-virsh is not installed" in done.stdout


def test_bad_domcaps_file(tmp_path: Path) -> None:
    path = tmp_path / "caps.xml"
    path.write_text("<capabilities/>")
    done = kubevirt_cca("detect", "--domcaps", str(path), "--root", str(tmp_path))
    assert done.returncode == 1
    assert "expected <domainCapabilities>" in done.stdout
    assert "Traceback" not in done.stderr


def test_help() -> None:
    done = kubevirt_cca("detect", "--help")
    assert done.returncode == 0 and "example:" in done.stdout


def test_what_the_stack_honours_is_in_the_text_and_the_json(tmp_path: Path) -> None:
    from tests.conftest import DATA

    host = str(fake_host(tmp_path, cca=True))
    args = (
        "detect",
        "--domcaps",
        str(DATA / "domcapabilities" / "aarch64-cca-no-enum.xml"),
        "--rme-guest-help",
        str(DATA / "rme-guest" / "linaro-v3.txt"),
        "--root",
        host,
    )
    text = kubevirt_cca(*args)
    assert text.returncode == 0, text.stderr
    assert "libvirt honours: no parameter (platform defaults only)\n" in text.stdout
    assert (
        "QEMU rme-guest honours: measurementAlgo sha256, measurementAlgo sha512, "
        "personalizationValue, measurementLog\n"
    ) in text.stdout
    report = json.loads(kubevirt_cca(*args, "--output", "json").stdout)
    assert report["evidence"]["libvirt"] == {
        "arch": "aarch64",
        "ccaSupported": "yes",
        "measurementAlgorithms": [],
        "personalizationValue": False,
        "measurementLog": False,
        "virtCCA": False,
        "launchSecurity": "absent",
        "sectypes": [],
    }
    assert report["evidence"]["rmeGuest"] == {
        "known": True,
        "answer": "rme-guest options:",
        "properties": ["measurement-algorithm", "measurement-log", "personalization-value"],
        "measurementAlgorithms": ["sha256", "sha512"],
        "personalizationValue": True,
        "measurementLog": True,
    }
    assert report["checks"][1] == {
        "name": "qemu-rme-guest",
        "status": "pass",
        "message": "QEMU rme-guest honours: measurementAlgo sha256, measurementAlgo sha512, "
        "personalizationValue, measurementLog",
    }


def test_an_absent_rme_guest_answer_is_evidence_not_a_crash(tmp_path: Path) -> None:
    from tests.conftest import DATA

    done = kubevirt_cca(
        "detect",
        "--domcaps",
        str(DATA / "domcapabilities" / "aarch64-cca-sha384.xml"),
        "--rme-guest-help",
        str(tmp_path / "absent.txt"),
        "--root",
        str(fake_host(tmp_path, cca=True)),
        "--output",
        "json",
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    # QEMU could not be asked: libvirt's sha256/sha384/sha512 are no choice, sha512 is fixed.
    assert report["measurementAlgorithms"] == ["sha512"]
    assert report["evidence"]["rmeGuest"] == {"error": f"{tmp_path / 'absent.txt'}: no such file"}
    assert report["verdict"] == "warn"
    assert report["checks"][1] == {
        "name": "qemu-rme-guest",
        "status": "warn",
        "message": f"{tmp_path / 'absent.txt'}: no such file",
    }


def test_virtcca_is_not_arm_cca(tmp_path: Path) -> None:
    from tests.conftest import DATA

    done = kubevirt_cca(
        "detect",
        "--domcaps",
        str(DATA / "domcapabilities" / "aarch64-virtcca.xml"),
        "--root",
        str(fake_host(tmp_path, cca=True)),
    )
    assert done.returncode == 1
    assert "  - libvirt's <cca> is openEuler's virtCCA (it names hisi-cca-enable)" in done.stdout
