"""The node labeller against the real API server, with a ServiceAccount token bound to its Node.

The API server adds the token's node-name claim (``authentication.kubernetes.io/node-name``);
the node-restriction ValidatingAdmissionPolicy from ``kubevirt-cca manifests`` reads it. Also
issue 18's stale-label cases: an annotation the API server refuses as invalid must never keep a
"capable" label on a node that can no longer run Realms.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from kubevirt_cca.core.node.labels import is_owned_label
from tests.conftest import shared_path
from tests.install.expected import LABELLER_LABELS_REFUSAL
from tests.labeller.conftest import make_host
from tests.peers.apiserver.cluster import kubevirt_cca
from tests.peers.apiserver.conftest import Installed

pytestmark = pytest.mark.peers

# What aarch64-cca.xml gets: its libvirt lists sha256 and sha512, and without QEMU's rme-guest
# answer only the fixed sha512 is a choice a Realm really has (issue 22, docs/node-labels.md).
OWNED = (
    "kubevirt.io/cca",
    "cca.kubevirt.io/measurement-algo-sha512",
)
DETECTION = "cca.kubevirt.io/detection"
# Room a Node's annotations have, together (keys and values), before the API server says Invalid.
ANNOTATIONS_LIMIT = 256 * 1024


def domcaps(name: str) -> Path:
    return shared_path("fixtures", "kubevirt", "domcapabilities", name)


def labeller_kubeconfig(installed: Installed, node: str, folder: Path) -> Path:
    token = installed.sa_token("kubevirt-cca-labeller", node=node)
    return installed.server.token_kubeconfig(folder / f"labeller-{node}.kubeconfig", token)


def run_labeller(
    installed: Installed, node: str, folder: Path, *source: str, kvm: bool = True
) -> subprocess.CompletedProcess[str]:
    host = make_host(folder / f"host-{kvm}", kvm=kvm, rmi="1" if kvm else "0")
    env = {**installed.server.env, "KUBECONFIG": str(labeller_kubeconfig(installed, node, folder))}
    return kubevirt_cca(
        "labeller", "--once", "--node-name", node, "--root", str(host), *source, env=env
    )


def label_capable(installed: Installed, node: str, folder: Path) -> None:
    """One labeller run on a capable host (the aarch64-cca domain capabilities); it succeeds."""
    done = run_labeller(installed, node, folder, "--domcaps-file", str(domcaps("aarch64-cca.xml")))
    assert done.returncode == 0, done.stderr


def node_metadata(installed: Installed, node: str) -> dict[str, dict[str, str]]:
    metadata = installed.server.get("node", node)["metadata"]
    return {
        "labels": metadata.get("labels") or {},
        "annotations": metadata.get("annotations") or {},
    }


def owned(installed: Installed, node: str) -> dict[str, str]:
    labels = node_metadata(installed, node)["labels"]
    return {k: v for k, v in labels.items() if is_owned_label(k)}


def test_labels_its_own_node_with_a_node_bound_token(
    installed: Installed, node_name: str, tmp_path: Path
) -> None:
    label_capable(installed, node_name, tmp_path)
    assert owned(installed, node_name) == dict.fromkeys(OWNED, "true")
    report = json.loads(node_metadata(installed, node_name)["annotations"][DETECTION])
    assert report["capable"] is True
    # The Event about the change went to "default" (the labeller's Role there allows it).
    events = installed.server.kubectl("get", "events", "-n", "default", "-o", "json").stdout
    assert any(
        e["involvedObject"]["name"] == node_name and e["reason"] == "CCACapable"
        for e in json.loads(events)["items"]
    )


def test_node_restriction_refuses_other_nodes_and_foreign_keys(
    installed: Installed, node_name: str, tmp_path: Path
) -> None:
    other = f"{node_name}-other"
    installed.server.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": other}})
    kubeconfig = labeller_kubeconfig(installed, node_name, tmp_path)
    kubectl = installed.server.kubectl

    own = kubectl("label", "node", node_name, "kubevirt.io/cca=true", kubeconfig=kubeconfig)
    assert own.returncode == 0

    refused = kubectl(
        "label", "node", other, "kubevirt.io/cca=true", kubeconfig=kubeconfig, check=False
    )
    assert refused.returncode != 0
    assert (
        f"kubevirt-cca-labeller on node {node_name} may only change its own Node, not {other}"
    ) in refused.stderr

    foreign = kubectl(
        "label", "node", node_name, "team.example.com/owner=me", kubeconfig=kubeconfig, check=False
    )
    assert foreign.returncode != 0
    assert LABELLER_LABELS_REFUSAL + "team.example.com/owner" in foreign.stderr

    annotation = kubectl(
        "annotate", "node", node_name, "team.example.com/note=x", kubeconfig=kubeconfig, check=False
    )
    assert annotation.returncode != 0
    assert (
        "kubevirt-cca-labeller may only change the annotation cca.kubevirt.io/detection, "
        "not: team.example.com/note"
    ) in annotation.stderr

    taint = kubectl(
        "taint", "node", node_name, "x=y:NoSchedule", kubeconfig=kubeconfig, check=False
    )
    assert taint.returncode != 0
    assert "may not change a Node's spec" in taint.stderr

    # An unbound token (no node-name claim) changes nothing at all.
    unbound = installed.server.token_kubeconfig(
        tmp_path / "unbound", installed.sa_token("kubevirt-cca-labeller")
    )
    nameless = kubectl(
        "label", "node", node_name, "kubevirt.io/cca-", kubeconfig=unbound, check=False
    )
    assert nameless.returncode != 0
    assert "token names no node" in nameless.stderr
    assert owned(installed, node_name) == {"kubevirt.io/cca": "true"}
    assert "team.example.com/owner" not in node_metadata(installed, other)["labels"]


def fill_annotations(installed: Installed, node: str, *, leave: int) -> None:
    """A foreign annotation that leaves about ``leave`` bytes of the Node's 256 KiB."""
    used = sum(len(k) + len(v) for k, v in node_metadata(installed, node)["annotations"].items())
    key = "team.example.com/inventory"
    size = ANNOTATIONS_LIMIT - used - len(key) - leave
    patch = json.dumps({"metadata": {"annotations": {key: "x" * size}}})
    path = Path(installed.webhook.log.parent / f"{node}-fill.json")
    path.write_text(patch)
    installed.server.kubectl("patch", "node", node, "--type=merge", "--patch-file", str(path))


def test_capable_to_not_capable_loses_the_labels_when_the_annotation_cannot_fit(
    installed: Installed, node_name: str, tmp_path: Path
) -> None:
    label_capable(installed, node_name, tmp_path)
    assert owned(installed, node_name) == dict.fromkeys(OWNED, "true")
    # Another writer fills the annotations: the capable report fits, a longer one will not.
    fill_annotations(installed, node_name, leave=0)

    # The host lost KVM and RMM: a report with more reasons, longer than the one stored.
    done = run_labeller(
        installed,
        node_name,
        tmp_path,
        "--domcaps-file",
        str(domcaps("aarch64-no-cca.xml")),
        kvm=False,
    )
    assert owned(installed, node_name) == {}
    assert done.returncode == 1
    assert "refused the detection annotation and labels as an invalid Node" in done.stderr
    assert "metadata.annotations: Too long" in done.stderr
    assert "not a conflict" in done.stderr
    assert "keeps changing" not in done.stderr
    # The old report stays (it could not be replaced); doctor reads the missing label first.
    report = json.loads(node_metadata(installed, node_name)["annotations"][DETECTION])
    assert report["capable"] is True


def test_a_huge_command_error_does_not_keep_the_labels(
    installed: Installed, node_name: str, tmp_path: Path
) -> None:
    label_capable(installed, node_name, tmp_path)
    # virsh fails with one 1 MiB line of error output (and a flood after it).
    script = tmp_path / "virsh.sh"
    script.write_text(
        "#!/bin/sh\nhead -c 1048576 /dev/zero | tr '\\0' e >&2\n"
        "echo >&2\nhead -c 8388608 /dev/zero | tr '\\0' f >&2\nexit 1\n"
    )
    script.chmod(0o755)
    done = run_labeller(installed, node_name, tmp_path, "--domcaps-command", str(script))
    assert done.returncode == 0, done.stderr
    assert owned(installed, node_name) == {}
    annotation = node_metadata(installed, node_name)["annotations"][DETECTION]
    assert len(annotation.encode()) <= 16 * 1024
    report = json.loads(annotation)
    assert report["capable"] is False
    assert any("could not be read" in r and "more characters)" in r for r in report["reasons"])


# --- NVIDIA's libvirt and the admin's override (issue 22 item 1) -------------------------------

OVERRIDE = "cca.kubevirt.io/libvirt-honours"
RPV_LABEL = "cca.kubevirt.io/personalization-value"
LOG_LABEL = "cca.kubevirt.io/measurement-log"


def own_domcaps(name: str) -> Path:
    from tests.conftest import DATA

    return DATA / "domcapabilities" / name


def test_nvidia_libvirt_and_the_admins_override(
    installed: Installed, node_name: str, tmp_path: Path
) -> None:
    nvidia = ("--domcaps-file", str(own_domcaps("aarch64-nvidia-cca.xml")))
    done = run_labeller(installed, node_name, tmp_path, *nvidia)
    assert done.returncode == 0, done.stderr
    labels = node_metadata(installed, node_name)["labels"]
    # libvirt lists sha256 and sha512, NVIDIA's QEMU measures with SHA-512: sha512 only, and
    # neither parameter (its domain capabilities cannot say them).
    assert {k for k in labels if k.startswith(("kubevirt.io/cca", "cca.kubevirt.io/"))} == {
        "kubevirt.io/cca",
        "cca.kubevirt.io/measurement-algo-sha512",
    }
    report = json.loads(node_metadata(installed, node_name)["annotations"][DETECTION])
    assert report["effectiveMeasurementAlgorithm"] == "sha512"

    # The admin (cluster-admin here) says what this node's libvirt passes on.
    installed.server.kubectl(
        "annotate", "node", node_name, f"{OVERRIDE}=personalizationValue,measurementLog"
    )
    done = run_labeller(installed, node_name, tmp_path, *nvidia)
    assert done.returncode == 0, done.stderr
    metadata = node_metadata(installed, node_name)
    assert metadata["labels"][RPV_LABEL] == metadata["labels"][LOG_LABEL] == "true"
    assert metadata["annotations"][OVERRIDE] == "personalizationValue,measurementLog"

    # The labeller's own token may not write the override (its node policy).
    kubeconfig = labeller_kubeconfig(installed, node_name, tmp_path)
    refused = installed.server.kubectl(
        "annotate",
        "node",
        node_name,
        "--overwrite",
        f"{OVERRIDE}=measurementLog",
        kubeconfig=kubeconfig,
        check=False,
    )
    assert refused.returncode != 0
    assert (
        f"kubevirt-cca-labeller may only change the annotation cca.kubevirt.io/detection, "
        f"not: {OVERRIDE}"
    ) in refused.stderr

    # A VM owner (admin of a namespace only) cannot touch Nodes at all.
    namespace = f"owner-{node_name}"
    installed.server.kubectl("create", "namespace", namespace)
    installed.server.kubectl(
        "create", "rolebinding", "owner", "--clusterrole=admin", "--user=alice", "-n", namespace
    )
    owner = installed.server.kubectl(
        "annotate",
        "node",
        node_name,
        "--overwrite",
        f"{OVERRIDE}=measurementLog",
        "--as=alice",
        check=False,
    )
    assert owner.returncode != 0
    assert "forbidden" in owner.stderr.lower()
    assert node_metadata(installed, node_name)["annotations"][OVERRIDE] == (
        "personalizationValue,measurementLog"
    )


def test_the_override_cannot_make_a_node_capable(
    installed: Installed, node_name: str, tmp_path: Path
) -> None:
    installed.server.kubectl(
        "annotate", "node", node_name, f"{OVERRIDE}=personalizationValue,measurementLog"
    )
    for name in ("aarch64-nvidia-cca-no.xml", "aarch64-cca-launchsecurity-no.xml"):
        done = run_labeller(
            installed, node_name, tmp_path, "--domcaps-file", str(own_domcaps(name))
        )
        assert done.returncode == 0, done.stderr
        metadata = node_metadata(installed, node_name)
        assert not {k for k in metadata["labels"] if k.startswith(("kubevirt.io/cca", "cca."))}
        report = json.loads(metadata["annotations"][DETECTION])
        assert report["capable"] is False
        assert report["evidence"]["adminOverride"]["applied"] == []
