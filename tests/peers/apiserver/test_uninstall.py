"""``kubevirt-cca uninstall`` against the real API server: refuses while CCA VMs exist, a dry run
changes nothing, the real run removes everything ours and nothing else, and a reinstall admits
Realms again (docs/admin.md, "Uninstalling").

It takes the session's install away and puts it back, so it is the last file of the lane.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from kubevirt_cca.core.node.labels import is_owned_label
from tests.peers.apiserver.cluster import kubevirt_cca
from tests.peers.apiserver.conftest import INSTALL_NAMESPACE, KUBEVIRT_NAMESPACE, Installed
from tests.peers.apiserver.test_admission import HOOKS, stored, template_of, vm, vmi
from tests.peers.apiserver.test_labeller import DETECTION, label_capable

pytestmark = pytest.mark.peers

ENABLED = "cca.kubevirt.io/enabled"
FOREIGN_LABELS = {"example.com/rack": "r7", "kubernetes.io/arch": "arm64"}
FOREIGN_ANNOTATION = {"example.com/owner": "ops"}
SKIP_NODE = "node-labeller.kubevirt.io/skip-node"
STEP_NAMES = (
    "admission",
    "workloads",
    "rbac",
    "labeller restriction",
    "configuration",
    "node labels",
    "namespace",
)


def uninstall(installed: Installed, *args: str) -> tuple[int, str, str]:
    done = kubevirt_cca(
        "uninstall",
        "--kubeconfig",
        str(installed.server.kubeconfig),
        *args,
        env=installed.server.env,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stdout, done.stderr


def present(installed: Installed, objects: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """(kind, namespace, name) of those ``objects`` the API server holds now."""
    found = set()
    for obj in objects:
        meta = obj["metadata"]
        ns = ["-n", meta["namespace"]] if meta.get("namespace") else []
        done = installed.server.kubectl(
            "get",
            f"{obj['kind']}{_group(obj)}",
            meta["name"],
            *ns,
            "-o",
            "json",
            "--ignore-not-found",
            check=False,
        )
        assert done.returncode == 0, done.stderr
        if done.stdout.strip():
            live = json.loads(done.stdout)
            if not live["metadata"].get("deletionTimestamp"):
                found.add((obj["kind"], meta.get("namespace", ""), meta["name"]))
    return found


def _group(obj: dict[str, Any]) -> str:
    group, _, version = obj["apiVersion"].rpartition("/")
    return f".{version}.{group}" if group else ""


def cca_users(installed: Installed) -> list[tuple[str, str, str]]:
    listed = json.loads(installed.server.kubectl("get", "vmi,vm", "-A", "-o", "json").stdout)
    users = []
    for obj in listed["items"]:
        template = obj.get("spec", {}).get("template", {}).get("metadata", {})
        if ENABLED in (obj["metadata"].get("labels") or {}) or ENABLED in (
            template.get("labels") or {}
        ):
            users.append((obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"]))
    return users


def node_metadata(installed: Installed, node: str) -> dict[str, dict[str, str]]:
    metadata = installed.server.get("node", node)["metadata"]
    return {
        "labels": metadata.get("labels") or {},
        "annotations": metadata.get("annotations") or {},
    }


def finalize_namespace(installed: Installed, name: str) -> None:
    """What the namespace controller does once a Terminating namespace is empty (none runs
    here): clear its finalizers, so the namespace goes and can be created again."""
    server = installed.server
    ns = server.get("namespace", name)
    ns["spec"]["finalizers"] = []
    server.kubectl(
        "replace", "--raw", f"/api/v1/namespaces/{name}/finalize", "-f", "-", stdin=json.dumps(ns)
    )
    # With its finalizers cleared, the next delete removes it (the controller's last call).
    server.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")
    for _ in range(100):
        if not server.kubectl(
            "get", "namespace", name, "--ignore-not-found", "-o", "name", check=False
        ).stdout.strip():
            return
        time.sleep(0.1)
    raise AssertionError(f"namespace {name} is still there after its finalizers were cleared")


def reinstall(installed: Installed) -> None:
    """The same objects again, and the local webhook restarted with a token of the new
    ServiceAccount (the old one's token died with it)."""
    installed.webhook.stop()
    installed.server.create(*installed.objects)
    installed.server.token_kubeconfig(
        installed.webhook.kubeconfig, installed.sa_token("kubevirt-cca-webhook")
    )
    installed.webhook.start()


def test_uninstall_refuses_dry_runs_removes_only_ours_and_reinstall_works(
    installed: Installed, namespace: str, node_name: str, tmp_path: Path
) -> None:
    server = installed.server
    # A node labelled by the real labeller (its own token), with keys that are not ours too.
    label_capable(installed, node_name, tmp_path)
    server.kubectl("label", "node", node_name, "example.com/rack=r7")
    server.kubectl("annotate", "node", node_name, "example.com/owner=ops")
    before = node_metadata(installed, node_name)
    assert [k for k in before["labels"] if is_owned_label(k)]
    assert DETECTION in before["annotations"]
    # A node an admin keeps away from labellers: its CCA label is the admin's.
    skipped = f"{node_name}-skip"
    server.create(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": skipped,
                "labels": {"kubevirt.io/cca": "true"},
                "annotations": {SKIP_NODE: "true"},
            },
        }
    )
    # Something of someone else's in another namespace, and the certificate Secret that
    # cert-manager or `certs ensure` would have written (not part of the manifests).
    server.kubectl("create", "configmap", "keep-me", "-n", namespace, "--from-literal=a=b")
    server.kubectl(
        "create",
        "secret",
        "generic",
        "kubevirt-cca-webhook-tls",
        "-n",
        INSTALL_NAMESPACE,
        "--from-literal=tls.crt=x",
    )

    # 1. A VM that asks for CCA: refused, even as a dry run, naming it; nothing changes.
    realm_vm = vm("realm-vm", template_of(vmi("t")))
    server.create(realm_vm, namespace=namespace)
    ours = installed.objects
    everything = present(installed, ours)
    code, out, err = uninstall(installed, "--dry-run")
    assert code == 1
    assert out == ""
    assert f"VirtualMachine {namespace}/realm-vm" in err
    assert "would start as plain VMs" in err and "Nothing was changed" in err
    assert present(installed, ours) == everything
    # --force goes on, saying what it goes on despite (a dry run here: still nothing changes).
    code, out, err = uninstall(installed, "--dry-run", "--force")
    assert code == 0, err
    assert "warning: going on (--force)" in err and f"VirtualMachine {namespace}/realm-vm" in err
    assert out.splitlines()[-1] == "dry run: nothing was changed"
    assert present(installed, ours) == everything

    # Earlier tests of the lane left CCA VMIs and VMs behind: the admin removes them all.
    for kind, ns, name in cca_users(installed):
        server.kubectl("delete", kind, name, "-n", ns)
    assert cca_users(installed) == []

    # 2. The dry run: one line per step, in order, and nothing changed.
    code, out, err = uninstall(installed, "--dry-run")
    assert code == 0, err
    lines = out.splitlines()
    assert [line.split(":", 1)[0] for line in lines[:-1]] == list(STEP_NAMES)
    assert lines[-1] == "dry run: nothing was changed"
    assert lines[0].startswith(
        "admission: would remove MutatingWebhookConfiguration kubevirt-cca, "
        "ValidatingWebhookConfiguration kubevirt-cca, "
    )
    assert f"node {node_name} (" in lines[5]
    assert skipped in lines[5] and "skip-node" in lines[5]
    assert lines[6] == f"namespace: would remove Namespace {INSTALL_NAMESPACE}"
    assert present(installed, ours) == everything
    assert node_metadata(installed, node_name) == before

    # 3. The real run: everything ours is gone, nothing else.
    code, out, err = uninstall(installed)
    assert code == 0, err
    lines = out.splitlines()
    assert [line.split(":", 1)[0] for line in lines[:-1]] == list(STEP_NAMES)
    assert lines[-1] == f"kubevirt-cca removed from namespace {INSTALL_NAMESPACE} and every node"
    assert "Secret kubevirt-cca/kubevirt-cca-webhook-tls" in lines[4]
    assert present(installed, ours) == set()
    after = node_metadata(installed, node_name)
    assert not [k for k in after["labels"] if is_owned_label(k)]
    assert DETECTION not in after["annotations"]
    assert {k: v for k, v in after["labels"].items() if not is_owned_label(k)} == {
        k: v for k, v in before["labels"].items() if not is_owned_label(k)
    }
    assert after["labels"]["example.com/rack"] == "r7"
    assert after["annotations"]["example.com/owner"] == "ops"
    assert node_metadata(installed, skipped)["labels"]["kubevirt.io/cca"] == "true"
    assert server.get("configmap", "keep-me", namespace=namespace)["data"] == {"a": "b"}
    assert server.get("kubevirt", "kubevirt", namespace=KUBEVIRT_NAMESPACE)
    assert server.get("namespace", "default")
    # A second run finds nothing left (the namespace is still terminating: no controller).
    code, out, err = uninstall(installed)
    assert code == 0, err
    assert out.splitlines()[0].startswith("admission: nothing to remove")

    # 4. Reinstall: the same manifests, and a CCA VMI is admitted (and mutated) again.
    finalize_namespace(installed, INSTALL_NAMESPACE)
    reinstall(installed)
    assert present(installed, ours) == everything
    realm = vmi("realm-again")
    # No workaround: the policies read no parameter (issue 21 item 6), so the API server's loss
    # of a re-created binding's parameter (kubernetes#133827) cannot refuse it.
    done = server.create(realm, namespace=namespace, check=False)
    assert done.returncode == 0, done.stderr
    got = stored(installed, namespace, realm)
    assert got["spec"]["nodeSelector"] == {"kubevirt.io/cca": "true"}
    assert json.loads(got["metadata"]["annotations"][HOOKS])[0]["args"][0] == "hook"
    # Not refused either way: the label is back on the node once its labeller runs again.
    (tmp_path / "again").mkdir()
    label_capable(installed, node_name, tmp_path / "again")
    assert node_metadata(installed, node_name)["labels"]["kubevirt.io/cca"] == "true"
