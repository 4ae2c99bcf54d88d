"""deploy/ renders offline, says the same as ``kubevirt-cca manifests``, and is valid Kubernetes."""

from __future__ import annotations

import io
import json
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubevirt_cca.adapters.install_files import (
    load_policies,
    policies_have_kustomization,
    write_kustomize,
)
from kubevirt_cca.cli import main
from kubevirt_cca.core.install import (
    CERT_MANAGER,
    SELF_SIGNED,
    InstallOptions,
    install_files,
    install_objects,
)
from kubevirt_cca.core.install.policy_values import (
    RENDERED_POLICIES,
    render_policy,
    rendered_values,
)
from kubevirt_cca.errors import ManifestError
from tests.install.support import DEPLOY, DEPLOY_SELF_SIGNED, by_key, kustomize

# deploy/'s images: placeholders that an overlay (or --image, --virt-launcher-image) replaces.
PLACEHOLDER = InstallOptions().image
LAUNCHER_PLACEHOLDER = InstallOptions().virt_launcher_image
IMAGES = ("--image", PLACEHOLDER, "--virt-launcher-image", LAUNCHER_PLACEHOLDER)


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_deploy_renders_the_same_objects_as_the_manifests_command() -> None:
    rendered = kustomize(DEPLOY)
    code, out, err = run_cli("manifests", *IMAGES)
    assert code == 0, err
    printed = [doc for doc in yaml.safe_load_all(out) if doc]
    assert by_key(rendered) == by_key(printed)
    assert by_key(printed) == by_key(install_objects(InstallOptions(), load_policies()))


def test_the_self_signed_overlay_renders_the_self_signed_manifests() -> None:
    rendered = kustomize(DEPLOY_SELF_SIGNED)
    code, out, err = run_cli("manifests", *IMAGES, "--certificates", "self-signed")
    assert code == 0, err
    assert by_key(rendered) == by_key(yaml.safe_load_all(out))
    assert not [o for o in rendered if o["apiVersion"].startswith("cert-manager.io/")]


def test_deploy_is_what_the_generator_writes() -> None:
    """deploy/ is generated: a change in core/install/ without regenerating fails here.

    As the command writes it: with the optional deploy/monitoring/ (its own kustomization)."""
    files = install_files(InstallOptions(monitoring=True), load_policies())
    with tempfile.TemporaryDirectory() as tmp:
        written = write_kustomize(
            Path(tmp), files, policies_folder=policies_have_kustomization(DEPLOY / "policies")
        )
        for path in written:
            relative = path.relative_to(tmp)
            committed = DEPLOY / relative
            assert committed.is_file(), f"deploy/{relative} is missing"
            assert committed.read_text() == path.read_text(), (
                f"deploy/{relative} is stale: run "
                "'uv run kubevirt-cca manifests --write-kustomize deploy'"
            )


def test_every_policy_file_is_installed() -> None:
    """No file of deploy/policies/ is left out of what deploy/ renders."""
    folder = DEPLOY / "policies"
    if not folder.is_dir():
        pytest.skip("deploy/policies/ does not exist yet")
    in_files = {
        (d["kind"], d["metadata"]["name"])
        for path in folder.glob("*.yaml")
        if path.name != "kustomization.yaml"
        for d in yaml.safe_load_all(path.read_text())
        if d
    }
    rendered = {(o["kind"], o["metadata"]["name"]) for o in kustomize(DEPLOY)}
    assert in_files
    assert in_files <= rendered


def test_json_output_is_a_list_of_the_same_objects() -> None:
    code, out, _ = run_cli("manifests", *IMAGES, "--output", "json")
    assert code == 0
    document = json.loads(out)
    assert document["kind"] == "List"
    assert by_key(document["items"]) == by_key(install_objects(InstallOptions(), load_policies()))


def test_image_and_namespace_reach_every_object() -> None:
    code, out, err = run_cli(
        "manifests",
        "--image",
        "registry.example/cca:1.2",
        "--namespace",
        "realms",
        "--kubevirt-namespace",
        "openshift-cnv",
        "--virt-launcher-image",
        "registry.example/virt-launcher:v9",
    )
    assert code == 0, err
    objects = [doc for doc in yaml.safe_load_all(out) if doc]
    text = json.dumps(objects)
    assert "kubevirt-cca:0.1.0" not in text
    assert '"kubevirt-cca"' not in json.dumps([o["metadata"].get("namespace") for o in objects])
    images = [
        c["image"]
        for o in objects
        if o["kind"] in ("Deployment", "DaemonSet")
        for c in o["spec"]["template"]["spec"]["containers"]
    ]
    assert images == ["registry.example/cca:1.2", "registry.example/cca:1.2"]
    config = next(o for o in objects if o["kind"] == "ConfigMap")
    assert config["metadata"]["namespace"] == "realms"
    assert config["data"]["hookImage"] == "registry.example/cca:1.2"
    for obj in objects:
        if obj["kind"] in ("RoleBinding", "ClusterRoleBinding"):
            assert {s["namespace"] for s in obj["subjects"]} == {"realms"}
    kubevirt_role = next(
        o for o in objects if o["kind"] == "Role" and o["metadata"]["namespace"] == "openshift-cnv"
    )
    assert kubevirt_role["rules"][0]["resources"] == ["kubevirts"]
    policy = next(
        o
        for o in objects
        if o["kind"] == "ValidatingAdmissionPolicy"
        and o["metadata"]["name"] == "kubevirt-cca-labeller-node-restriction"
    )
    assert (
        "system:serviceaccount:realms:kubevirt-cca-labeller"
        in policy["spec"]["matchConditions"][0]["expression"]
    )
    # No policy has a parameter (issue 21 item 6): the image is rendered into the two that
    # need it, as the ConfigMap has it.
    policies = [o for o in objects if o["kind"].startswith("ValidatingAdmissionPolicy")]
    assert not [o for o in policies if {"paramKind", "paramRef"} & set(o["spec"])]
    rendered = [
        rendered_values(o)
        for o in policies
        if o["metadata"]["name"] in RENDERED_POLICIES and o["kind"] == "ValidatingAdmissionPolicy"
    ]
    assert rendered == [{"hookImage": "registry.example/cca:1.2", "integrationMode": "auto"}] * 2
    webhooks = next(o for o in objects if o["kind"] == "MutatingWebhookConfiguration")
    assert (
        webhooks["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
        == "realms/kubevirt-cca-webhook"
    )
    assert webhooks["webhooks"][0]["clientConfig"]["service"]["namespace"] == "realms"
    certificate = next(
        o
        for o in objects
        if o["kind"] == "Certificate" and o["metadata"]["name"] == "kubevirt-cca-webhook"
    )
    assert "kubevirt-cca-webhook.realms.svc" in certificate["spec"]["dnsNames"]
    daemon_set = next(o for o in objects if o["kind"] == "DaemonSet")
    assert (
        daemon_set["spec"]["template"]["spec"]["initContainers"][0]["image"]
        == "registry.example/virt-launcher:v9"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--namespace", "Bad_NS"], "namespace: expected a namespace name"),
        (["--image", "no spaces allowed"], "image: expected a container image reference"),
        (["--kubevirt-namespace", ""], "kubevirt-namespace: expected a namespace name"),
        (["--namespace", "kube-system"], "namespace: 'kube-system' is a system namespace"),
        (["--namespace", "default"], "namespace: 'default' is a system namespace"),
        (["--namespace", "kube-public"], "namespace: 'kube-public' is a system namespace"),
        (["--namespace", "kube-node-lease"], "namespace: 'kube-node-lease' is a system namespace"),
        (["--image", "Registry.example/UPPER:1"], "image: expected a container image reference"),
        (["--image", "registry.example/cca:"], "image: expected a container image reference"),
        (["--image", "registry.example//cca"], "image: expected a container image reference"),
        (["--image", "cca@sha256:abc"], "image: expected a container image reference"),
        (["--image=-cca:1"], "image: expected a container image reference"),
        (
            ["--virt-launcher-image", "quay.io/kubevirt/virt-launcher:v1.8.0:extra"],
            "virt-launcher-image: expected a container image reference",
        ),
    ],
)
def test_bad_options_are_refused_with_the_field_named(argv: list[str], message: str) -> None:
    if "--image" not in argv:
        argv = ["--image", "registry.example/cca:1", *argv]
    if not any(arg.startswith("--virt-launcher-image") for arg in argv):
        argv = [*argv, "--virt-launcher-image", "registry.example/virt-launcher:v9"]
    code, out, err = run_cli("manifests", *argv)
    assert code == 2  # a usage error (docs/cli.md)
    assert out == ""
    assert message in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "image",
    [
        "kubevirt-cca",
        "kubevirt-cca:0.1.0",
        "registry.example/kubevirt-cca:0.1.0",
        "registry.example:5000/team/kubevirt-cca:v1.0_rc-1",
        "localhost/cca",
        "quay.io/kubevirt/virt-launcher@sha256:" + "a" * 64,
        "quay.io/kubevirt/virt-launcher:v1.8.0@sha256:" + "0" * 64,
        "[::1]:5000/cca:1",
    ],
)
def test_image_references_are_accepted(image: str) -> None:
    code, out, err = run_cli("manifests", "--image", image, "--virt-launcher-image", image)
    assert code == 0, err
    assert image in out


def _all_variants() -> list[tuple[str, list[dict[str, Any]]]]:
    policies = load_policies()
    return [
        (mode, install_objects(InstallOptions(certificates=mode), policies))
        for mode in (CERT_MANAGER, SELF_SIGNED)
    ] + [
        (
            "custom",
            install_objects(
                InstallOptions(
                    namespace="cca-system", image="r.example/k:2", kubevirt_namespace="kv"
                ),
                policies,
            ),
        )
    ]


@pytest.mark.parametrize(("variant", "objects"), _all_variants(), ids=lambda v: str(v)[:20])
def test_every_object_validates_against_the_kubernetes_schemas(
    variant: str, objects: list[dict[str, Any]]
) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    checked = 0
    for obj in objects:
        if obj["apiVersion"].startswith("cert-manager.io/"):
            continue  # a CRD: tests/install/test_cert_manager.py checks these
        try:
            kubernetes_validate.validate(obj, "1.37", strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(f"{obj['kind']} {obj['metadata']['name']}: {path}: {exc.message}")
        checked += 1
    assert checked >= 20


def test_printing_without_an_image_is_refused_naming_the_option() -> None:
    """No object may name an image nobody published: --image is required to print."""
    code, out, err = run_cli("manifests")
    assert code == 2  # a usage error (docs/cli.md)
    assert out == ""
    assert "image: required: the kubevirt-cca image you built and pushed" in err
    assert "Traceback" not in err


def test_printing_without_a_virt_launcher_image_is_refused_saying_why() -> None:
    """No default names a virt-launcher that cannot start Realms (upstream KubeVirt's)."""
    code, out, err = run_cli("manifests", "--image", "registry.example/cca:1")
    assert code == 2  # a usage error (docs/cli.md)
    assert out == ""
    assert "virt-launcher-image: required: your KubeVirt's virt-launcher image, with a " in err
    assert "upstream KubeVirt's cannot start Realms yet" in err
    assert "Traceback" not in err


def test_the_kustomize_base_is_written_with_the_placeholder_without_an_image(
    tmp_path: Path,
) -> None:
    code, _, err = run_cli("manifests", "--write-kustomize", str(tmp_path))
    assert code == 0, err
    deployment = (tmp_path / "webhook" / "deployment.yaml").read_text()
    assert f"image: {PLACEHOLDER}" in deployment


# --- issue 21 item 6: the policies' values are rendered in --------------------------------------


def test_the_integration_mode_reaches_the_config_map_and_both_policies() -> None:
    code, out, err = run_cli(
        "manifests",
        "--image",
        "registry.example/cca:1.2",
        "--virt-launcher-image",
        LAUNCHER_PLACEHOLDER,
        "--integration-mode",
        "sidecar",
    )
    assert code == 0, err
    objects = [doc for doc in yaml.safe_load_all(out) if doc]
    config = next(o for o in objects if o["kind"] == "ConfigMap")
    assert config["data"]["integrationMode"] == "sidecar"
    pinned = [
        rendered_values(o)
        for o in objects
        if o["kind"] == "ValidatingAdmissionPolicy" and o["metadata"]["name"] in RENDERED_POLICIES
    ]
    assert pinned == [{"hookImage": "registry.example/cca:1.2", "integrationMode": "sidecar"}] * 2
    # argparse's own refusal of another value: exit 2, the option and the choices named.
    stderr = io.StringIO()
    with pytest.raises(SystemExit) as exited, redirect_stderr(stderr):
        main(["manifests", *IMAGES, "--integration-mode", "x"])
    assert exited.value.code == 2
    assert "argument --integration-mode: invalid choice: 'x'" in stderr.getvalue()


def test_a_rendered_policy_must_have_its_variables_and_no_parameter() -> None:
    policy: dict[str, Any] = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": RENDERED_POLICIES[0]},
        "spec": {"variables": [{"name": "hookImage", "expression": "'x'"}]},
    }
    with pytest.raises(ManifestError, match="expected the variables integrationMode"):
        render_policy(policy, InstallOptions())
    with_param = {**policy, "spec": {**policy["spec"], "paramKind": {"kind": "ConfigMap"}}}
    with pytest.raises(ManifestError, match="has paramKind"):
        render_policy(with_param, InstallOptions())
    # Other policies pass through untouched.
    other = {**policy, "metadata": {"name": "kubevirt-cca-keys-in-place"}}
    assert render_policy(other, InstallOptions()) == other
