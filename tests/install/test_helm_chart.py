"""charts/kubevirt-cca: generated from the install builders, and through a real Helm (its v4 SDK,
tests/helm.py) it renders exactly the objects ``kubevirt-cca manifests`` prints, for every option.
"""

from __future__ import annotations

import io
import tarfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubevirt_cca.adapters.helm_chart import (
    CHOICE_VALUES,
    FREE_VALUES,
    PUBLISHED_IMAGE,
    chart_files,
    write_helm_chart,
)
from kubevirt_cca.adapters.install_files import load_policies
from kubevirt_cca.cli import main
from kubevirt_cca.core.install import InstallOptions, install_objects
from kubevirt_cca.errors import ManifestError
from tests.helm import CHART, HELM_SDK_VERSION, helm, helm_command
from tests.install.support import by_key

RELEASE_NAMESPACE = "cca-releases"
LAUNCHER = "registry.example/kubevirt/virt-launcher:v1.8.0"
# virtLauncherImage has no default: every render sets it (tested without it below).
LAUNCHER_SET = ("--set", f"virtLauncherImage={LAUNCHER}")


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def test_the_committed_chart_is_what_the_generator_writes() -> None:
    """A change in core/install/ (or a policy) without regenerating the chart fails here."""
    expected = chart_files(load_policies())
    committed = {
        str(path.relative_to(CHART)): path.read_text(encoding="utf-8")
        for path in CHART.rglob("*")
        if path.is_file()
    }
    stale = sorted(name for name in expected if committed.get(name) != expected[name])
    extra = sorted(set(committed) - set(expected))
    assert not stale and not extra, (
        f"charts/kubevirt-cca is stale (differs: {stale}, not generated: {extra}): run "
        "'uv run kubevirt-cca manifests --write-helm charts/kubevirt-cca'"
    )


def test_the_generator_removes_templates_the_builders_no_longer_make(tmp_path: Path) -> None:
    old = tmp_path / "templates" / "gone" / "old.yaml"
    old.parent.mkdir(parents=True)
    old.write_text("kind: Gone\n")
    code, _, err = run_cli("manifests", "--write-helm", str(tmp_path))
    assert code == 0, err
    assert not old.exists()
    assert (tmp_path / "templates" / "webhook" / "deployment.yaml").is_file()


def test_every_install_option_is_a_chart_value() -> None:
    """A new InstallOptions field must become a value (or the chart could not set it)."""
    fields = {f.field for f in FREE_VALUES} | {c.field for c in CHOICE_VALUES}
    missing = set(InstallOptions.__dataclass_fields__) - fields
    assert not missing, (
        f"InstallOptions fields without a chart value: {sorted(missing)}: add each to FREE_VALUES "
        "(any string) or CHOICE_VALUES (strings, or False and True) in adapters/helm_chart.py, "
        "to OPTION_MATRIX here, then regenerate the chart"
    )
    assert fields <= set(InstallOptions.__dataclass_fields__)


def test_an_option_that_reaches_an_object_changed_is_refused() -> None:
    """The chart can only carry a value that appears as given; anything else fails loudly."""
    policy = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "sentinel-ns-x"}}
    with pytest.raises(ManifestError, match="an option's value reaches an object changed"):
        chart_files({"odd.yaml": [policy]})


def test_helm_lint_passes_strict() -> None:
    done = helm("lint", str(CHART), "--strict", *LAUNCHER_SET)
    assert "0 chart(s) failed" in done.stdout


def test_the_helm_sdk_is_the_pinned_version() -> None:
    command, _ = helm_command()
    if "helm.py" not in command[-1]:
        pytest.skip("a helm binary of its own version is in use (KUBEVIRT_CCA_HELM)")
    assert helm("version").stdout.startswith(HELM_SDK_VERSION)


OPTION_MATRIX = [
    pytest.param({"virtLauncherImage": LAUNCHER}, id="defaults"),
    pytest.param({"virtLauncherImage": LAUNCHER, "certificates": "self-signed"}, id="self-signed"),
    pytest.param({"virtLauncherImage": LAUNCHER, "integrationMode": "sidecar"}, id="sidecar-mode"),
    pytest.param({"virtLauncherImage": LAUNCHER, "monitoring": True}, id="monitoring"),
    pytest.param(
        {"virtLauncherImage": LAUNCHER, "monitoring": True, "certificates": "self-signed"},
        id="monitoring-self-signed",
    ),
    pytest.param(
        {"virtLauncherImage": LAUNCHER, "integrationMode": "plugin", "certificates": "self-signed"},
        id="plugin-mode-self-signed",
    ),
    pytest.param(
        {
            "image": "registry.example:5000/team/kubevirt-cca:v1.0_rc-1",
            "namespace": "cca-system",
            "kubevirtNamespace": "kv",
            "virtLauncherImage": "quay.io/kubevirt/virt-launcher@sha256:" + "a" * 64,
        },
        id="custom-cert-manager",
    ),
    pytest.param(
        {
            "image": "[::1]:5000/cca:1",
            "namespace": "0cca",
            "kubevirtNamespace": "virt",
            "virtLauncherImage": "localhost/launcher",
            "certificates": "self-signed",
        },
        id="custom-self-signed",
    ),
]
FLAGS = {
    "image": "--image",
    "namespace": "--namespace",
    "kubevirtNamespace": "--kubevirt-namespace",
    "virtLauncherImage": "--virt-launcher-image",
    "certificates": "--certificates",
    "integrationMode": "--integration-mode",
    "monitoring": "--monitoring",  # a switch: given when true
}


def values_file(tmp_path: Path, values: dict[str, Any]) -> Path:
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


@pytest.mark.parametrize("values", OPTION_MATRIX)
def test_helm_template_renders_what_manifests_prints(
    values: dict[str, Any], tmp_path: Path
) -> None:
    rendered = helm(
        "template",
        "kubevirt-cca",
        str(CHART),
        "-n",
        RELEASE_NAMESPACE,
        "-f",
        str(values_file(tmp_path, values)),
    )
    argv = [
        arg
        for key, value in values.items()
        for arg in (
            (FLAGS[key],) if value is True else () if value is False else (FLAGS[key], value)
        )
    ]
    if "image" not in values:
        argv += ["--image", PUBLISHED_IMAGE]  # the chart's default: the published image
    code, printed, err = run_cli("manifests", *argv)
    assert code == 0, err
    assert by_key(documents(rendered.stdout)) == by_key(documents(printed))


def test_the_packaged_chart_renders_the_same_objects(tmp_path: Path) -> None:
    """What the release workflow publishes: the chart as a .tgz."""
    done = helm("package", str(CHART), "-d", str(tmp_path))
    archives = list(tmp_path.glob("kubevirt-cca-*.tgz"))
    assert len(archives) == 1, done.stdout
    with tarfile.open(archives[0]) as archive:
        assert "kubevirt-cca/values.schema.json" in archive.getnames()
    rendered = helm(
        "template", "kubevirt-cca", str(archives[0]), "-n", RELEASE_NAMESPACE, *LAUNCHER_SET
    )
    expected = install_objects(
        InstallOptions(image=PUBLISHED_IMAGE, virt_launcher_image=LAUNCHER), load_policies()
    )
    assert by_key(documents(rendered.stdout)) == by_key(expected)


def test_template_delimiters_in_an_object_are_printed_as_they_are(tmp_path: Path) -> None:
    policy = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "braces", "namespace": "kubevirt-cca"},
        "data": {"text": "{{ .Values.image }} and }} {{"},
    }
    write_helm_chart(tmp_path, chart_files({"braces.yaml": [policy]}))
    rendered = helm(
        "template", "kubevirt-cca", str(tmp_path), "-n", RELEASE_NAMESPACE, *LAUNCHER_SET
    )
    maps = [o for o in documents(rendered.stdout) if o["metadata"]["name"] == "braces"]
    assert maps == [policy]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "virtLauncherImage: required: your KubeVirt's virt-launcher image, with a libvirt"),
        (
            ["--set", "virtLauncherImage="],
            "virtLauncherImage: required: your KubeVirt's virt-launcher image, with a libvirt",
        ),
        (["--set", "certificates=letsencrypt"], "/certificates': value must be one of"),
        (["--set", "namespace=Kube_CCA"], "/namespace': 'Kube_CCA' does not match pattern"),
        (["--set", "image="], "/image': '' does not match pattern"),
        (["--set", "image=Registry.example/UPPER:1"], "/image': 'Registry.example/UPPER:1' does"),
        (["--set", "image=registry.example/cca:"], "/image': 'registry.example/cca:' does not"),
        (["--set", "image=cca@sha256:abc"], "/image': 'cca@sha256:abc' does not match pattern"),
        (
            ["--set", "virtLauncherImage=quay.io/kubevirt/virt-launcher:v1.8.0:extra"],
            "/virtLauncherImage': 'quay.io/kubevirt/virt-launcher:v1.8.0:extra' does not match",
        ),
        (["--set", "replicas=3"], "additional properties 'replicas' not allowed"),
        (["--set", "namespace=kube-system"], 'namespace: "kube-system" is a system namespace'),
        (["--set", "namespace=openshift-cca"], 'namespace: "openshift-cca" is a system'),
        (
            ["--set", f"namespace={RELEASE_NAMESPACE}"],
            f"namespace: the chart creates namespace {RELEASE_NAMESPACE} itself",
        ),
    ],
)
def test_bad_values_are_refused_with_the_value_named(args: list[str], message: str) -> None:
    if args and "virtLauncherImage" not in args[-1]:
        args = [*LAUNCHER_SET, *args]
    done = helm("template", "kubevirt-cca", str(CHART), "-n", RELEASE_NAMESPACE, *args, check=False)
    assert done.returncode == 1
    assert done.stdout == ""
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_a_chart_written_with_an_image_defaults_to_it(tmp_path: Path) -> None:
    """The release workflow's chart: --write-helm --image IMAGE@DIGEST makes it the default."""
    image = "ghcr.io/kubevirt-cca/kubevirt-cca:0.1.0@sha256:" + "b" * 64
    code, _, err = run_cli("manifests", "--write-helm", str(tmp_path), "--image", image)
    assert code == 0, err
    values = yaml.safe_load((tmp_path / "values.yaml").read_text())
    assert values["image"] == image
    rendered = helm(
        "template", "kubevirt-cca", str(tmp_path), "-n", RELEASE_NAMESPACE, *LAUNCHER_SET
    )
    expected = install_objects(
        InstallOptions(image=image, virt_launcher_image=LAUNCHER), load_policies()
    )
    assert by_key(documents(rendered.stdout)) == by_key(expected)


def test_writing_a_chart_with_a_bad_image_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    code, out, err = run_cli("manifests", "--write-helm", str(tmp_path / "c"), "--image", "A:b")
    assert code == 1
    assert out == ""
    assert "image: expected a container image reference" in err
    assert "Traceback" not in err
    assert not (tmp_path / "c").exists()
