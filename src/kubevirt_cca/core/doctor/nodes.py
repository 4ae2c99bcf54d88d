"""The nodes: the labeller on every arm64 node, and which nodes can run Realms (and why not)."""

from __future__ import annotations

import json
from typing import Any

from kubevirt_cca.constants import (
    KUBEVIRT_SKIP_NODE_ANNOTATION,
    NODE_CCA_LABEL,
    NODE_DETECTION_ANNOTATION,
)
from kubevirt_cca.core.admission.gates import ClusterView
from kubevirt_cca.core.doctor.model import (
    Check,
    Expected,
    Snapshot,
    Status,
    mapping,
    objects,
    unreadable,
)
from kubevirt_cca.core.install.names import LABELLER
from kubevirt_cca.core.wire.objects import dig

ARCH_LABEL = "kubernetes.io/arch"
# Taints every DaemonSet pod tolerates (the DaemonSet controller adds these tolerations).
_DAEMONSET_TOLERATED = {
    "node.kubernetes.io/not-ready",
    "node.kubernetes.io/unreachable",
    "node.kubernetes.io/disk-pressure",
    "node.kubernetes.io/memory-pressure",
    "node.kubernetes.io/pid-pressure",
    "node.kubernetes.io/unschedulable",
    "node.kubernetes.io/network-unavailable",
}


def _name(obj: Any) -> str:
    return str(dig(obj, "metadata", "name"))


def arm64_nodes(snapshot: Snapshot) -> list[dict[str, Any]]:
    return [
        n for n in snapshot.nodes.items() if dig(n, "metadata", "labels", ARCH_LABEL) == "arm64"
    ]


def _blocking_taints(node: dict[str, Any]) -> list[str]:
    return [
        f"{t.get('key')}:{t.get('effect')}"
        for t in objects(dig(node, "spec", "taints"))
        if t.get("effect") in ("NoSchedule", "NoExecute")
        and t.get("key") not in _DAEMONSET_TOLERATED
    ]


def _pod_ready(pod: dict[str, Any]) -> bool:
    conditions = objects(dig(pod, "status", "conditions"))
    return dig(pod, "status", "phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in conditions
    )


def _pod_trouble(pod: dict[str, Any]) -> str:
    """Why a pod is not ready, as kubectl would show it."""
    for key in ("initContainerStatuses", "containerStatuses"):
        for status in objects(dig(pod, "status", key)):
            waiting = dig(status, "state", "waiting")
            if isinstance(waiting, dict) and waiting.get("reason"):
                return f"container {status.get('name')}: {waiting['reason']}"
    return f"phase {dig(pod, 'status', 'phase') or 'unknown'}"


def _selects(selector: Any, labels: Any) -> bool:
    wanted = mapping(dig(selector, "matchLabels"))
    labels = mapping(labels)
    return bool(wanted) and all(labels.get(k) == v for k, v in wanted.items())


def check_labeller(snapshot: Snapshot, expected: Expected, view: ClusterView) -> Check:
    name = "node labeller"
    namespace = expected.options.namespace
    for what, read in (
        ("DaemonSet", snapshot.daemon_set),
        ("Pods", snapshot.pods),
        ("Nodes", snapshot.nodes),
    ):
        if read.error:
            return unreadable(name, what, read)
    if snapshot.daemon_set.missing:
        return Check(
            name,
            Status.FAIL,
            f"DaemonSet {namespace}/{LABELLER} is missing: no node gets the kubevirt.io/cca label",
            fix="re-apply the install",
        )
    nodes = arm64_nodes(snapshot)
    if not nodes:
        return Check(
            name,
            Status.FAIL,
            f"the cluster has no arm64 node (label {ARCH_LABEL}=arm64): "
            "Realms need Arm CCA hardware",
            fix="join arm64 nodes with CCA-capable firmware and kernel",
        )
    selector = dig(snapshot.daemon_set.value, "spec", "selector")
    pods: dict[str, list[dict[str, Any]]] = {}
    for pod in snapshot.pods.items():
        if _selects(selector, dig(pod, "metadata", "labels")):
            pods.setdefault(str(dig(pod, "spec", "nodeName")), []).append(pod)
    failures, warnings = [], []
    for node in nodes:
        node_pods = pods.get(_name(node), [])
        if any(_pod_ready(p) for p in node_pods):
            continue
        if node_pods:
            failures.append(
                f"{_name(node)}: labeller pod {_name(node_pods[0])} is not ready "
                f"({_pod_trouble(node_pods[0])})"
            )
        elif taints := _blocking_taints(node):
            warnings.append(
                f"{_name(node)}: no labeller pod, the node is tainted {', '.join(taints)} "
                "(add a toleration if Realms should run there)"
            )
        else:
            failures.append(f"{_name(node)}: no labeller pod")
    warnings += _launcher_image_warning(snapshot, view)
    covered = len(nodes) - len(failures) - sum(1 for w in warnings if "no labeller pod" in w)
    summary = f"running and ready on {covered} of {len(nodes)} arm64 node(s)"
    if failures:
        return Check(
            name,
            Status.FAIL,
            summary,
            tuple(failures + warnings),
            fix=f"kubectl get pods -n {namespace} -l app.kubernetes.io/component=labeller -o wide; "
            "kubectl describe / logs the pods named above",
        )
    if warnings:
        return Check(name, Status.WARN, summary, tuple(warnings))
    return Check(name, Status.OK, summary)


def _launcher_image_warning(snapshot: Snapshot, view: ClusterView) -> list[str]:
    """The labeller must ask the libvirt KubeVirt runs: compare with KubeVirt's own image."""
    kubevirt = view.kubevirt
    registry = dig(kubevirt, "status", "observedKubeVirtRegistry")
    version = dig(kubevirt, "status", "observedKubeVirtVersion")
    init = objects(dig(snapshot.daemon_set.value, "spec", "template", "spec", "initContainers"))
    image = next((c.get("image") for c in init if c.get("name") == "domcapabilities"), None)
    if not registry or not version or not isinstance(image, str):
        return []
    wanted = f"{registry}/virt-launcher:{version}"
    if image == wanted:
        return []
    return [
        f"the labeller asks the libvirt of {image}, but KubeVirt runs {wanted}: "
        "what it reports may not be what starts VMs "
        f"(install with 'kubevirt-cca manifests --virt-launcher-image {wanted}')"
    ]


def _report(node: dict[str, Any]) -> dict[str, Any] | str:
    """The node's detection report, or why there is none to read."""
    raw = mapping(dig(node, "metadata", "annotations")).get(NODE_DETECTION_ANNOTATION)
    if not isinstance(raw, str):
        return f"not checked yet (no {NODE_DETECTION_ANNOTATION} annotation)"
    try:
        report = json.loads(raw)
    except ValueError:
        return f"{NODE_DETECTION_ANNOTATION} is not JSON"
    if not isinstance(report, dict):
        return f"{NODE_DETECTION_ANNOTATION} is not a detection report"
    return report


def node_reasons(node: dict[str, Any]) -> str:
    """Why a node is not CCA-capable, from the labeller's detection report."""
    annotations = mapping(dig(node, "metadata", "annotations"))
    if annotations.get(KUBEVIRT_SKIP_NODE_ANNOTATION) == "true":
        return f"skipped ({KUBEVIRT_SKIP_NODE_ANNOTATION}=true)"
    report = _report(node)
    if isinstance(report, str):
        return report
    if report.get("capable") is True:
        return f"the labeller found it capable but the {NODE_CCA_LABEL} label is missing"
    listed = report.get("reasons")
    reasons = [str(r) for r in listed] if isinstance(listed, list) else []
    return "; ".join(reasons) or "not capable (no reason recorded)"


def label_contradiction(node: dict[str, Any]) -> str | None:
    """Why a node labelled ``kubevirt.io/cca=true`` cannot be trusted to run Realms, if so.

    The label can be set by writers other than the labeller; doctor counts a node only when it
    is arm64 and its own detection report agrees.
    """
    arch = dig(node, "metadata", "labels", ARCH_LABEL)
    if arch != "arm64":
        return (
            f"labelled {NODE_CCA_LABEL}=true but it is {arch or 'of unknown architecture'} "
            f"({ARCH_LABEL}): Realms need an arm64 host"
        )
    report = _report(node)
    if isinstance(report, str):
        return f"labelled {NODE_CCA_LABEL}=true but its detection report is missing: {report}"
    if report.get("capable") is not True:
        listed = report.get("reasons")
        why = "; ".join(str(r) for r in listed) if isinstance(listed, list) else ""
        return (
            f"labelled {NODE_CCA_LABEL}=true but its own detection report says not "
            f"capable{f' ({why})' if why else ''}"
        )
    return None


def check_cca_nodes(snapshot: Snapshot) -> Check:
    name = "CCA-capable nodes"
    if snapshot.nodes.error:
        return unreadable(name, "Nodes", snapshot.nodes)
    nodes = snapshot.nodes.items()
    labelled = [n for n in nodes if dig(n, "metadata", "labels", NODE_CCA_LABEL) == "true"]
    contradictions = [(n, why) for n in labelled if (why := label_contradiction(n)) is not None]
    wrong = {_name(n) for n, _ in contradictions}
    capable = [n for n in labelled if _name(n) not in wrong]
    capable_names = {_name(n) for n in capable}
    others = [
        n for n in arm64_nodes(snapshot) if _name(n) not in capable_names and _name(n) not in wrong
    ]
    problems = [f"{_name(n)}: {why}" for n, why in contradictions]
    details = [f"{_name(n)}: {node_reasons(n)}" for n in others]
    total = (
        len(capable)
        + len(others)
        + sum(1 for n, _ in contradictions if dig(n, "metadata", "labels", ARCH_LABEL) == "arm64")
    )
    summary = f"{len(capable)} of {total} arm64 node(s) can run Realms" + (
        f": {', '.join(_name(n) for n in capable)}" if capable else ""
    )
    if problems:
        return Check(
            name,
            Status.FAIL,
            f"{summary}; {len(problems)} node(s) "
            f"carry a {NODE_CCA_LABEL}=true label their detection does not support: "
            f"{', '.join(sorted(wrong))}",
            tuple(problems + details),
            fix=(
                "remove the label "
                f"(kubectl label node NAME {NODE_CCA_LABEL}-) and find who set it; "
                "docs/troubleshooting.md, 'doctor says a label contradicts the node'"
            ),
        )
    if not capable:
        return Check(
            name,
            Status.FAIL,
            summary,
            tuple(details),
            fix="docs/troubleshooting.md, 'No node is CCA-capable', explains each reason",
        )
    return Check(name, Status.OK, summary, tuple(details))
