"""Benchmark: ``kubevirt-cca doctor`` on a large cluster.

Run: uv run python benchmarks/bench_doctor.py [--nodes N] [--calls N]

- checks: the pure checks (``run_checks``) on a snapshot of a ready cluster with N arm64 nodes,
  each with a labeller pod and a detection annotation, one in ten not capable;
- baseline: the least any such check must do, in the same process: walk the nodes and parse
  every detection annotation (``json.loads``);
- end to end: the ``doctor`` command's work (every read over HTTP from kmock's Kubernetes
  emulator on 127.0.0.1, then the checks), once, wall time.

The checks and the baseline are timed interleaved; their ratio is the figure to read on a noisy
machine.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import copy
import json
import statistics
import time
from datetime import UTC, datetime
from typing import Any

import kmock

from kubevirt_cca.adapters.install_files import load_policies
from kubevirt_cca.cli import build_parser
from kubevirt_cca.cli.doctor import diagnose, expected_from_args
from kubevirt_cca.core.certs import CA_CRT, TLS_CRT, plan
from kubevirt_cca.core.doctor import Expected, Read, Snapshot, is_ready, run_checks
from kubevirt_cca.core.install import InstallOptions, install_objects
from kubevirt_cca.core.install.names import service_dns_names

PLURALS = {
    "Node": "nodes",
    "Pod": "pods",
    "EndpointSlice": "endpointslices",
    "KubeVirt": "kubevirts",
}


def cluster(nodes: int) -> list[dict[str, Any]]:
    """A ready cluster: the install objects plus what Kubernetes and the labeller add."""
    now = datetime.now(UTC)
    secret = plan(None, now=now, dns_names=service_dns_names(InstallOptions())).material.data
    bundle = base64.b64encode(secret[CA_CRT]).decode()
    objects = copy.deepcopy(install_objects(InstallOptions(), load_policies()))
    for obj in objects:
        for hook in obj.get("webhooks", []):
            hook["clientConfig"]["caBundle"] = bundle
    objects += [
        {
            "apiVersion": "kubevirt.io/v1",
            "kind": "KubeVirt",
            "metadata": {"name": "kubevirt", "namespace": "kubevirt"},
            "spec": {
                "configuration": {
                    "developerConfiguration": {"featureGates": ["WorkloadEncryptionCCA", "Sidecar"]}
                }
            },
            "status": {
                "phase": "Deployed",
                "observedKubeVirtVersion": "v1.8.0",
                "observedKubeVirtRegistry": "quay.io/kubevirt",
            },
        },
        {
            # cert-manager's signed request: where doctor reads the certificate (no Secret).
            "apiVersion": "cert-manager.io/v1",
            "kind": "CertificateRequest",
            "metadata": {
                "name": "kubevirt-cca-webhook-1",
                "namespace": "kubevirt-cca",
                "annotations": {
                    "cert-manager.io/certificate-name": "kubevirt-cca-webhook",
                    "cert-manager.io/certificate-revision": "1",
                },
            },
            "status": {"certificate": base64.b64encode(secret[TLS_CRT]).decode()},
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "kubevirt-cca-webhook-x",
                "namespace": "kubevirt-cca",
                "labels": {"kubernetes.io/service-name": "kubevirt-cca-webhook"},
            },
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.0.0.1"], "conditions": {"ready": True}},
                {"addresses": ["10.0.0.2"], "conditions": {"ready": True}},
            ],
        },
    ]
    for i in range(nodes):
        capable = i % 10 != 0
        name = f"arm-{i}"
        labels = {"kubernetes.io/arch": "arm64", "kubernetes.io/hostname": name}
        if capable:
            labels["kubevirt.io/cca"] = "true"
        report = {
            "capable": capable,
            "measurementAlgorithms": [],
            "reasons": [] if capable else ["libvirt reports cca supported='no'"],
            "evidence": {"libvirt": {"ccaSupported": "yes" if capable else "no"}},
            "checkedAt": now.isoformat(),
        }
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "labels": labels,
                    "annotations": {"cca.kubevirt.io/detection": json.dumps(report)},
                },
                "spec": {},
            }
        )
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"kubevirt-cca-labeller-{i}",
                    "namespace": "kubevirt-cca",
                    "labels": {
                        "app.kubernetes.io/name": "kubevirt-cca",
                        "app.kubernetes.io/component": "labeller",
                    },
                },
                "spec": {"nodeName": name, "containers": [{"name": "labeller"}]},
                "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
            }
        )
    return objects


def snapshot(objects: list[dict[str, Any]]) -> tuple[Snapshot, Expected]:
    def one(kind: str, name: str | None = None) -> Read:
        found = [
            o
            for o in objects
            if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
        ]
        return Read(value=found[0] if found else None)

    def every(kind: str) -> Read:
        return Read(value=[o for o in objects if o["kind"] == kind])

    policies = {
        (o["kind"], o["metadata"]["name"]): Read(value=o)
        for o in objects
        if o["kind"].startswith("ValidatingAdmissionPolicy")
    }
    snap = Snapshot(
        now=datetime.now(UTC),
        kubevirts=every("KubeVirt"),
        plugins=Read(value=[]),
        config_map=one("ConfigMap"),
        mutating=one("MutatingWebhookConfiguration"),
        validating=one("ValidatingWebhookConfiguration"),
        service=one("Service"),
        endpoint_slices=every("EndpointSlice"),
        certificate_config_map=Read(),
        certificate_requests=every("CertificateRequest"),
        deployment=one("Deployment"),
        daemon_set=one("DaemonSet"),
        pods=every("Pod"),
        nodes=every("Node"),
        policies=policies,
    )
    return snap, Expected(options=InstallOptions(), policies=tuple(policies))


def timed(fn: Any, calls: int) -> list[float]:
    out = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


async def end_to_end(objects: list[dict[str, Any]]) -> tuple[float, bool]:
    async with kmock.KubernetesEmulator() as api, kmock.Server(api):
        for obj in objects:
            plural = PLURALS.get(obj["kind"])
            if plural is None:
                plural = obj["kind"].lower() + "s"
                if obj["kind"].endswith("Policy"):
                    plural = obj["kind"].lower()[:-1] + "ies"
            meta = obj["metadata"]
            api.objects[f"{obj['apiVersion']}/{plural}", meta.get("namespace"), meta["name"]] = obj
        # the doctor command's own defaults, as its parser gives them (no hand-made Namespace
        # to fall behind the command's options)
        expected = expected_from_args(build_parser("doctor").parse_args(["doctor"]))
        start = time.perf_counter()
        checks = await diagnose(server=str(api.url), kubeconfig=None, expected=expected)
        for check in checks:
            if check.status.value != "ok":
                print(f"unexpected: {check}")
        return time.perf_counter() - start, is_ready(checks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--calls", type=int, default=30)
    args = parser.parse_args()
    objects = cluster(args.nodes)
    snap, expected = snapshot(objects)
    assert is_ready(run_checks(snap, expected))

    def baseline() -> None:
        for node in snap.nodes.items():
            json.loads(node["metadata"]["annotations"]["cca.kubevirt.io/detection"])

    checks_times: list[float] = []
    base_times: list[float] = []
    for _ in range(args.calls):
        checks_times += timed(lambda: run_checks(snap, expected), 1)
        base_times += timed(baseline, 1)
    checks_ms = statistics.median(checks_times) * 1000
    base_ms = statistics.median(base_times) * 1000
    print(f"nodes: {args.nodes}")
    print(f"checks (pure), median: {checks_ms:.2f} ms")
    print(f"baseline (parse every detection annotation), median: {base_ms:.2f} ms")
    print(f"ratio checks / baseline: {checks_ms / base_ms:.1f}")
    wall, ready = asyncio.run(end_to_end(objects))
    print(f"end to end over HTTP (kmock), once: {wall * 1000:.0f} ms (ready: {ready})")


if __name__ == "__main__":
    main()
