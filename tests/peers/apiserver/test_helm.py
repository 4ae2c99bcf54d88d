"""``helm install`` / ``upgrade`` / ``uninstall`` of charts/kubevirt-cca against the real
kube-apiserver (Helm's v4 SDK, tests/helm.py).

The session's shared API server already holds ``kubevirt-cca manifests`` applied by hand
(cluster-scoped names are fixed), so this module starts one of its own. No cert-manager runs
here: its two kinds the chart creates (Issuer, Certificate) are served by minimal CRDs, enough
for the API server to store them, as a cluster with cert-manager would.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubevirt_cca.core.install import object_key
from tests.helm import CHART, helm, helm_command
from tests.peers.apiserver.cluster import ApiServer, kubevirt_cca, start, stop

pytestmark = pytest.mark.peers

RELEASE = "kubevirt-cca"
RELEASE_NAMESPACE = "cca-releases"
IMAGE = "registry.example/kubevirt-cca:0.1.0"
NEW_IMAGE = "registry.example/kubevirt-cca:0.2.0"
LAUNCHER = "registry.example/kubevirt/virt-launcher:v1.8.0"
NEW_LAUNCHER = "registry.example/kubevirt/virt-launcher:v1.9.0"


def cert_manager_crd(kind: str, plural: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.cert-manager.io"},
        "spec": {
            "group": "cert-manager.io",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    helm_command()  # skip (or fail where required) before starting anything
    run_dir = tmp_path_factory.mktemp("helm-apiserver")
    started = start(run_dir)
    try:
        started.create(
            cert_manager_crd("Issuer", "issuers"), cert_manager_crd("Certificate", "certificates")
        )
        started.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
        for name in (RELEASE_NAMESPACE, "kubevirt", "kv2"):
            started.kubectl("create", "namespace", name)
        yield started
    finally:
        stop(run_dir)


def manifests(*argv: str) -> list[dict[str, Any]]:
    printed = kubevirt_cca("manifests", *argv, "--output", "json")
    assert printed.returncode == 0, printed.stderr
    items: list[dict[str, Any]] = json.loads(printed.stdout)["items"]
    return items


def live(server: ApiServer, objects: list[dict[str, Any]], folder: Path) -> list[dict[str, Any]]:
    """What the API server holds of ``objects`` (missing ones left out)."""
    path = folder / "objects.yaml"
    path.write_text(yaml.safe_dump_all(objects))
    done = server.kubectl("get", "-f", str(path), "-o", "json", "--ignore-not-found")
    if not done.stdout.strip():
        return []
    got = json.loads(done.stdout)
    found: list[dict[str, Any]] = got["items"] if got.get("kind") == "List" else [got]
    return found


def contained(expected: Any, actual: Any, where: str = "") -> list[str]:
    """Where ``actual`` lacks or differs from what ``expected`` says (the API server adds
    defaults, never takes a field away)."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where}: expected an object, got {actual!r}"]
        return [
            problem
            for key, value in expected.items()
            for problem in contained(value, actual.get(key), f"{where}.{key}")
        ]
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{where}: expected {expected!r}, got {actual!r}"]
        return [
            problem
            for index, (e, a) in enumerate(zip(expected, actual, strict=True))
            for problem in contained(e, a, f"{where}[{index}]")
        ]
    return [] if expected == actual else [f"{where}: expected {expected!r}, got {actual!r}"]


def assert_installed_as_printed(
    server: ApiServer, expected: list[dict[str, Any]], folder: Path
) -> None:
    stored = {object_key(obj): obj for obj in live(server, expected, folder)}
    missing = [key for key in map(object_key, expected) if key not in stored]
    assert not missing, f"not installed: {missing}"
    for obj in expected:
        got = stored[object_key(obj)]
        assert got["metadata"]["annotations"]["meta.helm.sh/release-name"] == RELEASE
        problems = contained({k: v for k, v in obj.items() if k != "metadata"}, got)
        problems += contained(obj["metadata"].get("labels", {}), got["metadata"]["labels"])
        assert not problems, f"{object_key(obj)}: {problems}"


def status(server: ApiServer) -> subprocess.CompletedProcess[str]:
    return helm(
        "status",
        RELEASE,
        "-n",
        RELEASE_NAMESPACE,
        "--kubeconfig",
        str(server.kubeconfig),
        check=False,
    )


def values_file(folder: Path, values: dict[str, Any]) -> str:
    path = folder / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return str(path)


def test_install_upgrade_uninstall(server: ApiServer, tmp_path: Path) -> None:
    kubeconfig = ["--kubeconfig", str(server.kubeconfig)]
    first = {"image": IMAGE, "virtLauncherImage": LAUNCHER, "certificates": "cert-manager"}
    installed = helm(
        "install",
        RELEASE,
        str(CHART),
        "-n",
        RELEASE_NAMESPACE,
        *kubeconfig,
        "-f",
        values_file(tmp_path, first),
    )
    assert "STATUS: deployed" in installed.stdout
    assert "REVISION: 1" in installed.stdout
    before = manifests("--image", IMAGE, "--virt-launcher-image", LAUNCHER)
    assert {o["kind"] for o in before} >= {"Issuer", "Certificate", "DaemonSet"}
    assert_installed_as_printed(server, before, tmp_path)

    # Other images, the other certificate source, the KubeVirt CR in another namespace.
    second = {
        "image": NEW_IMAGE,
        "virtLauncherImage": NEW_LAUNCHER,
        "certificates": "self-signed",
        "kubevirtNamespace": "kv2",
    }
    upgraded = helm(
        "upgrade",
        RELEASE,
        str(CHART),
        "-n",
        RELEASE_NAMESPACE,
        *kubeconfig,
        "-f",
        values_file(tmp_path, second),
    )
    assert "REVISION: 2" in upgraded.stdout
    after = manifests(
        "--image",
        NEW_IMAGE,
        "--virt-launcher-image",
        NEW_LAUNCHER,
        "--certificates",
        "self-signed",
        "--kubevirt-namespace",
        "kv2",
    )
    assert_installed_as_printed(server, after, tmp_path)
    kept = {object_key(o) for o in after}
    dropped = [o for o in before if object_key(o) not in kept]
    assert {(o["kind"], o["metadata"].get("namespace")) for o in dropped} >= {
        ("Issuer", "kubevirt-cca"),
        ("Certificate", "kubevirt-cca"),
        ("Role", "kubevirt"),
        ("RoleBinding", "kubevirt"),
    }
    assert live(server, dropped, tmp_path) == [], "the upgrade left what it no longer renders"
    assert {"Job", "CronJob"} <= {o["kind"] for o in after}

    uninstalled = helm("uninstall", RELEASE, "-n", RELEASE_NAMESPACE, *kubeconfig)
    assert f'release "{RELEASE}" uninstalled' in uninstalled.stdout
    # No namespace controller runs here: the Namespace itself stays Terminating, everything
    # else is deleted by Helm object by object.
    left = live(server, after, tmp_path)
    assert [o["kind"] for o in left if o["kind"] != "Namespace"] == []
    assert all(o["metadata"].get("deletionTimestamp") for o in left)
    gone = status(server)
    assert gone.returncode == 1
    assert "not found" in gone.stderr


def test_install_into_the_namespace_the_chart_creates_is_refused(server: ApiServer) -> None:
    done = helm(
        "install",
        "cca-elsewhere",
        str(CHART),
        "-n",
        "kubevirt",
        "--kubeconfig",
        str(server.kubeconfig),
        "--set",
        "namespace=kubevirt",
        "--set",
        f"image={IMAGE}",
        "--set",
        f"virtLauncherImage={LAUNCHER}",
        check=False,
    )
    assert done.returncode == 1
    assert "namespace: the chart creates namespace kubevirt itself" in done.stderr
    assert server.kubectl("get", "secrets", "-n", "kubevirt", "-o", "name").stdout == ""
