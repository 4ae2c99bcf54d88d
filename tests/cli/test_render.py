"""``kubevirt-cca render`` as a person runs it: output, exit codes, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from lxml import etree

from kubevirt_cca.constants import DEFAULT_CCA_FIRMWARE, ENABLED_LABEL, QEMU_NAMESPACE
from tests.cli.run import kubevirt_cca
from tests.conftest import ROOT, shared_path
from tests.core.rewrite_support import require_schema, schema_errors


def test_readme_command() -> None:
    done = kubevirt_cca("render", "examples/vmi-cca.yaml")
    assert done.returncode == 0, done.stderr
    root = etree.fromstring(done.stdout)
    assert root.findtext("name") == "default_realm-minimal"
    assert root.find("launchSecurity").get("type") == "cca"  # type: ignore[union-attr]
    assert root.findtext("os/loader") == DEFAULT_CCA_FIRMWARE
    assert done.stderr == ""


def test_params_example_in_every_dialect() -> None:
    for dialect in ("vep", "openeuler", "qemu-commandline"):
        done = kubevirt_cca("render", "examples/vm-cca-params.yaml", "--dialect", dialect)
        assert done.returncode == 0, done.stderr
        root = etree.fromstring(done.stdout)
        layer = "rme-guest-" if dialect == "qemu-commandline" else ""
        if dialect == "qemu-commandline":
            args = root.findall(f"{{{QEMU_NAMESPACE}}}commandline/{{{QEMU_NAMESPACE}}}arg")
            assert "measurement-algorithm=sha512" in (args[1].get("value") or "")
        else:
            assert root.findtext("launchSecurity/measurement-algo") == "sha512"
        # What the domain needs from a node, said where a person reads it.
        assert done.stderr.startswith(
            "kubevirt-cca render: note: in a cluster this runs only "
            f"on nodes labelled cca.kubevirt.io/{layer}"
            "measurement-algo-sha512=true"
        )
        assert f"cca.kubevirt.io/{layer}personalization-value=true" in done.stderr


def test_builtin_domains_validate() -> None:
    require_schema()
    for example in ("examples/vmi-cca.yaml", "examples/vm-cca-params.yaml"):
        done = kubevirt_cca("render", example, "--dialect", "qemu-commandline")
        assert schema_errors(done.stdout) == []


def test_with_shared_domain_and_flags() -> None:
    domain = shared_path("fixtures", "kubevirt", "domains", "kubevirt-arm64.xml")
    done = kubevirt_cca(
        "render",
        "examples/vmi-cca.yaml",
        "--domain",
        str(domain),
        "--firmware",
        "/opt/fw/CCA.fd",
        "--virtio-iommu",
        "off",
    )
    assert done.returncode == 0, done.stderr
    root = etree.fromstring(done.stdout)
    assert root.findtext("name") == "mynamespace_testvmi"
    assert root.findtext("os/loader") == "/opt/fw/CCA.fd"
    assert root.find("devices/disk/driver[@iommu]") is None


def test_x86_domain_is_refused_with_exit_1() -> None:
    domain = shared_path("fixtures", "kubevirt", "domains", "kubevirt-x86_64.xml")
    done = kubevirt_cca("render", "examples/vmi-cca.yaml", "--domain", str(domain))
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "kubevirt-cca render: error: the domain is for x86_64 (<os><type arch=...>); "
        "a CCA Realm needs an aarch64 domain"
    ]


def test_unlabelled_manifest_says_how_to_ask(tmp_path: Path) -> None:
    vmi = shared_path("fixtures", "kubevirt", "manifests", "vmi-arm.yaml")
    done = kubevirt_cca("render", str(vmi))
    assert done.returncode == 1
    assert f'add the label {ENABLED_LABEL}: "true"' in done.stderr
    assert "Traceback" not in done.stderr


def test_bad_parameters_list_every_field(tmp_path: Path) -> None:
    manifest = yaml.safe_load((ROOT / "examples" / "vmi-cca.yaml").read_text())
    manifest["metadata"]["annotations"] = {
        "cca.kubevirt.io/launch-security": json.dumps(
            {"measurementAlgo": "md5", "personalizationValue": "abc"}
        )
    }
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(manifest))
    done = kubevirt_cca("render", str(path))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2
    prefix = "kubevirt-cca render: error: metadata.annotations["
    assert all(line.startswith(prefix) for line in lines)
    assert ".measurementAlgo: unsupported value 'md5'" in lines[0]
    assert ".personalizationValue: is not valid base64" in lines[1]


@pytest.mark.parametrize(
    ("content", "fragment", "code"),
    [
        # An unreadable file is unusable input (2); a readable object of the wrong kind is
        # refused (1).
        ("a: [unclosed", "not valid YAML", 2),
        ("{bad json", "not valid JSON", 2),
        ("- just\n- a list\n", "is not a Kubernetes object", 2),
        ("kind: A\n---\nkind: B\n", "holds 2 objects", 2),
        ("kind: Pod\nmetadata: {}\n", "kind: kubevirt-cca reads", 1),
    ],
)
def test_bad_files_are_one_line_errors(
    tmp_path: Path, content: str, fragment: str, code: int
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(content)
    done = kubevirt_cca("render", str(path))
    assert done.returncode == code
    assert fragment in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_missing_file() -> None:
    done = kubevirt_cca("render", "no/such/file.yaml")
    assert done.returncode == 2
    assert done.stderr.strip() == "kubevirt-cca render: error: no/such/file.yaml: no such file"


def test_bad_domain_file(tmp_path: Path) -> None:
    path = tmp_path / "d.xml"
    path.write_text("<network/>")
    done = kubevirt_cca("render", "examples/vmi-cca.yaml", "--domain", str(path))
    assert done.returncode == 1
    assert "not a libvirt domain" in done.stderr


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--dialect", "bogus", "examples/vmi-cca.yaml"],
        ["--virtio-iommu", "maybe", "examples/vmi-cca.yaml"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    done = kubevirt_cca("render", *args)
    assert done.returncode == 2
    assert "usage: kubevirt-cca render" in done.stderr


def test_bad_firmware_flag_is_a_clear_error() -> None:
    done = kubevirt_cca("render", "examples/vmi-cca.yaml", "--firmware", "relative.fd")
    assert done.returncode == 2  # a usage error (docs/cli.md)
    assert "firmware: expected an absolute" in done.stderr


def test_help_has_an_example() -> None:
    done = kubevirt_cca("render", "--help")
    assert done.returncode == 0
    assert "example:" in done.stdout and "kubevirt-cca render examples/vmi-cca.yaml" in done.stdout


def test_stdin_manifest() -> None:
    done = kubevirt_cca("render", "-", stdin=(ROOT / "examples" / "vmi-cca.yaml").read_text())
    assert done.returncode == 0, done.stderr
