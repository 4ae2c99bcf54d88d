"""The labeller against kmock's Kubernetes API emulator over real HTTP."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import random
import socket
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import kmock
import pytest
import pytest_asyncio
from lightkube import AsyncClient

from kubevirt_cca.adapters.health import HealthServer
from kubevirt_cca.adapters.kube import async_client
from kubevirt_cca.adapters.node_labeller import (
    LabellerMetrics,
    NodeLabeller,
    ReconcileResult,
    Timing,
)
from kubevirt_cca.constants import (
    KUBEVIRT_SKIP_NODE_ANNOTATION,
    NODE_ALGO_LABEL_PREFIX,
    NODE_CCA_LABEL,
    NODE_DETECTION_ANNOTATION,
    NODE_HONOURS_OVERRIDE_ANNOTATION,
)
from kubevirt_cca.core.node.detection_report import DetectionReport
from kubevirt_cca.core.node.labels import is_owned_label
from kubevirt_cca.errors import CCAError, KubernetesAPIError
from tests.labeller.conftest import (
    CAPABLE_LABELS,
    FOREIGN_ANNOTATIONS,
    FOREIGN_LABELS,
    NODE,
    SwitchableDetector,
    domcaps,
)
from tests.labeller.emulator import NODES, ClusterAPI

pytestmark = [pytest.mark.asyncio, pytest.mark.shared]

ALL_LABELS = CAPABLE_LABELS["aarch64-cca.xml"]
UNAVAILABLE = {
    "apiVersion": "v1",
    "kind": "Status",
    "status": "Failure",
    "code": 503,
    "reason": "ServiceUnavailable",
    "message": "etcdserver: request timed out",
}


@pytest_asyncio.fixture
async def client(api: ClusterAPI) -> AsyncIterator[AsyncClient]:
    kube = async_client(server=str(api.url))
    yield kube
    await kube.close()


def labeller(client: AsyncClient, detector: Any, **timing: Any) -> NodeLabeller:
    return NodeLabeller(
        client=client,
        node_name=NODE,
        detector=detector,
        timing=Timing(**timing),
        rng=random.Random(7),
    )


def owned(node: dict[str, Any]) -> dict[str, str]:
    return {k: v for k, v in node["metadata"].get("labels", {}).items() if is_owned_label(k)}


def foreign(node: dict[str, Any]) -> dict[str, str]:
    return {k: v for k, v in node["metadata"].get("labels", {}).items() if not is_owned_label(k)}


def detection(node: dict[str, Any]) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(node["metadata"]["annotations"][NODE_DETECTION_ANNOTATION])
    return value


def sample(metrics: LabellerMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


# --- Added, changed, removed -------------------------------------------------------------------


@pytest.mark.parametrize("fixture", sorted(CAPABLE_LABELS))
async def test_each_libvirt_answer_is_labelled_and_explained(
    api: ClusterAPI, client: AsyncClient, host: Path, fixture: str
) -> None:
    api.add_node(NODE, labels=dict(FOREIGN_LABELS), annotations=dict(FOREIGN_ANNOTATIONS))
    detector = SwitchableDetector(domcaps(fixture), host)

    result = await labeller(client, detector).reconcile()

    node = api.node(NODE)
    assert result is ReconcileResult.PATCHED
    assert owned(node) == CAPABLE_LABELS[fixture]
    assert foreign(node) == FOREIGN_LABELS
    assert detection(node)["capable"] is bool(CAPABLE_LABELS[fixture])
    for key, value in FOREIGN_ANNOTATIONS.items():
        assert node["metadata"]["annotations"][key] == value
    assert len(api.patches()) == 1
    assert api.patches()[0].headers["Content-Type"] == "application/json-patch+json"


async def test_labels_added_then_changed_then_removed_with_an_event_each_time(
    api: ClusterAPI, client: AsyncClient, host: Path
) -> None:
    api.add_node(NODE, labels=dict(FOREIGN_LABELS), annotations={})
    detector = SwitchableDetector(domcaps("aarch64-cca.xml"), host)
    worker = labeller(client, detector)

    await worker.reconcile()
    assert owned(api.node(NODE)) == ALL_LABELS

    detector.domcaps_file = domcaps("aarch64-cca-no-algo-enum.xml")  # a newer host kernel
    await worker.reconcile()
    assert owned(api.node(NODE)) == {NODE_CCA_LABEL: "true"}

    detector.domcaps_file = domcaps("aarch64-no-cca.xml")  # e.g. firmware without RMM
    await worker.reconcile()
    node = api.node(NODE)
    assert owned(node) == {}
    assert foreign(node) == FOREIGN_LABELS
    assert detection(node)["capable"] is False
    assert "libvirt reports no <cca> feature" in detection(node)["reasons"][0]

    events = api.events()
    assert [(e["reason"], e["type"]) for e in events] == [
        ("CCACapable", "Normal"),
        ("CCAAlgorithmsChanged", "Normal"),
        ("CCANotCapable", "Warning"),
    ]
    for event in events:
        assert event["involvedObject"] == {
            "apiVersion": "v1",
            "kind": "Node",
            "name": NODE,
            "uid": f"uid-{NODE}",
        }
        assert event["metadata"]["namespace"] == "default"
        assert event["source"]["component"] == "kubevirt-cca-labeller"
    assert events[1]["message"] == ("measurement algorithms changed from sha512 to none listed")
    assert "no <cca> feature" in events[2]["message"]


async def test_a_node_without_label_or_annotation_maps_gets_them(
    api: ClusterAPI, client: AsyncClient, host: Path
) -> None:
    api.add_node(NODE)

    await labeller(client, SwitchableDetector(domcaps("aarch64-cca.xml"), host)).reconcile()

    node = api.node(NODE)
    assert node["metadata"]["labels"] == ALL_LABELS
    assert list(node["metadata"]["annotations"]) == [NODE_DETECTION_ANNOTATION]


# --- Foreign keys, skip, no write --------------------------------------------------------------


async def test_foreign_labels_and_annotations_are_never_touched(
    api: ClusterAPI, client: AsyncClient, host: Path
) -> None:
    lookalikes = {
        **FOREIGN_LABELS,
        "cca.kubevirt.io/measurement-algo": "x",
        "kubevirt.io/cca-legacy": "true",
        "example.com/kubevirt.io/cca": "true",
    }
    api.add_node(NODE, labels=dict(lookalikes), annotations=dict(FOREIGN_ANNOTATIONS))
    detector = SwitchableDetector(domcaps("aarch64-cca.xml"), host)
    worker = labeller(client, detector)

    await worker.reconcile()
    detector.domcaps_file = domcaps("aarch64-no-cca.xml")
    await worker.reconcile()

    node = api.node(NODE)
    assert node["metadata"]["labels"] == lookalikes
    assert {
        k: v for k, v in node["metadata"]["annotations"].items() if k != NODE_DETECTION_ANNOTATION
    } == FOREIGN_ANNOTATIONS


async def test_skip_node_annotation_is_honoured_until_removed(
    api: ClusterAPI, client: AsyncClient, host: Path
) -> None:
    stale = {NODE_CCA_LABEL: "true", NODE_ALGO_LABEL_PREFIX + "sha256": "true"}
    api.add_node(NODE, labels=dict(stale), annotations={KUBEVIRT_SKIP_NODE_ANNOTATION: "true"})
    worker = labeller(client, SwitchableDetector(domcaps("aarch64-no-cca.xml"), host))

    assert await worker.reconcile() is ReconcileResult.SKIPPED
    assert await worker.reconcile() is ReconcileResult.SKIPPED
    assert api.patches() == []
    assert api.node(NODE)["metadata"]["labels"] == stale
    assert worker.ready

    api.update_node(NODE, lambda n: n["metadata"]["annotations"].clear())
    assert await worker.reconcile() is ReconcileResult.PATCHED
    assert owned(api.node(NODE)) == {}
    assert sample(worker.metrics, "kubevirt_cca_labeller_reconciles_total", result="skipped") == 2


async def test_nothing_changed_means_one_read_and_no_write_per_cycle(
    api: ClusterAPI, client: AsyncClient, host: Path
) -> None:
    api.add_node(NODE, labels=dict(FOREIGN_LABELS), annotations={})
    detector = SwitchableDetector(domcaps("aarch64-cca.xml"), host)
    hours = iter(range(100))

    def later() -> DetectionReport:
        # Each check happens an hour after the last: only checkedAt differs.
        report = detector()
        assert report.checked_at is not None
        return dataclasses.replace(
            report, checked_at=report.checked_at + timedelta(hours=next(hours))
        )

    worker = labeller(client, later)
    assert await worker.reconcile() is ReconcileResult.PATCHED
    first = api.node(NODE)
    for _ in range(5):
        assert await worker.reconcile() is ReconcileResult.UNCHANGED

    assert len(api.gets()) == 6
    assert len(api.patches()) == 1
    assert len(api.events()) == 1
    assert [r.method for r in api] == ["GET", "PATCH", "POST"] + ["GET"] * 5
    assert api.node(NODE) == first  # checkedAt kept from the write: when the verdict was reached
    metrics = worker.metrics
    assert (
        sample(
            metrics,
            "kubevirt_cca_labeller_api_requests_total",
            verb="get",
            resource="nodes",
            outcome="ok",
        )
        == 6
    )
    assert (
        sample(
            metrics,
            "kubevirt_cca_labeller_api_requests_total",
            verb="patch",
            resource="nodes",
            outcome="ok",
        )
        == 1
    )
    assert sample(metrics, "kubevirt_cca_labeller_reconciles_total", result="unchanged") == 5


# --- Conflicts and failures --------------------------------------------------------------------


async def test_a_concurrent_change_conflicts_and_is_retried_with_a_fresh_read(
    api: ClusterAPI, client: AsyncClient, host: Path
) -> None:
    api.add_node(NODE, labels=dict(FOREIGN_LABELS), annotations={})

    def another_writer(cluster: ClusterAPI, patch: Any) -> None:
        cluster.update_node(NODE, lambda n: n["metadata"]["labels"].update(team="blue"))

    api.before_patch.append(another_writer)
    worker = labeller(client, SwitchableDetector(domcaps("aarch64-cca.xml"), host))

    assert await worker.reconcile() is ReconcileResult.PATCHED

    node = api.node(NODE)
    assert node["metadata"]["labels"] == {**FOREIGN_LABELS, "team": "blue", **ALL_LABELS}
    assert [r.method for r in api if r.resource == NODES] == ["GET", "PATCH", "GET", "PATCH"]
    retried = api.patches()[1].data
    assert retried[0] == {
        "op": "test",
        "path": "/metadata/labels",
        "value": {**FOREIGN_LABELS, "team": "blue"},
    }
    assert sample(worker.metrics, "kubevirt_cca_labeller_errors_total", kind="conflict") == 1
    assert (
        sample(
            worker.metrics,
            "kubevirt_cca_labeller_api_requests_total",
            verb="patch",
            resource="nodes",
            outcome="422",
        )
        == 1
    )
    assert len(api.events()) == 1


async def test_endless_conflicts_give_up_with_a_clear_error(
    api: ClusterAPI, client: AsyncClient, host: Path
) -> None:
    api.add_node(NODE, labels={}, annotations={})
    counter = iter(range(1000))

    def busy_writer(cluster: ClusterAPI, patch: Any) -> None:
        cluster.update_node(
            NODE, lambda n: n["metadata"]["labels"].update(churn=str(next(counter)))
        )

    api.before_patch.extend([busy_writer] * 3)
    worker = labeller(
        client, SwitchableDetector(domcaps("aarch64-cca.xml"), host), conflict_attempts=3
    )

    with pytest.raises(KubernetesAPIError, match="conflicted 3 times") as caught:
        await worker.reconcile()

    assert caught.value.status == 409
    assert owned(api.node(NODE)) == {}
    assert sample(worker.metrics, "kubevirt_cca_labeller_reconciles_total", result="failed") == 1


async def test_api_outage_backs_off_exponentially_and_keeps_the_labels(
    api: ClusterAPI, client: AsyncClient, host: Path
) -> None:
    # Last run found the node capable; now the host lost it, but the API server is down.
    before = {**FOREIGN_LABELS, **ALL_LABELS}
    api.add_node(NODE, labels=dict(before), annotations={})
    versions = api.node_versions(NODE)
    api[kmock.method.GET, NODES][:5] << 503 << UNAVAILABLE
    detector = SwitchableDetector(domcaps("aarch64-no-cca.xml"), host)
    started: list[float] = []

    def timed() -> DetectionReport:
        started.append(time.monotonic())
        return detector()

    worker = labeller(client, timed, interval=30.0, backoff_initial=0.04, backoff_max=1.0)
    task = asyncio.create_task(worker.run())
    try:
        async with asyncio.timeout(20):
            while not api.patches():
                assert api.node_versions(NODE) == versions  # nothing written during the outage
                await asyncio.sleep(0.01)
            while not worker.ready:
                await asyncio.sleep(0.01)
    finally:
        worker.request_stop()
        await task

    gaps = [b - a for a, b in itertools.pairwise(started)]
    assert len(gaps) == 5
    # Failure n waits the n-th back-off of the schedule (test_timing.py proves it doubles, half
    # of it random), drawn from the same seeded generator the worker was given: never shorter
    # (a sleep cannot end early), and nowhere near the 30 s interval. The upper margin is the
    # time a request and a loaded machine may add; it is not what the schedule promises.
    schedule = Timing(interval=30.0, backoff_initial=0.04, backoff_max=1.0)
    rng = random.Random(7)  # the seed labeller() gives the worker
    waits = [schedule.backoff(n, rng) for n in range(1, 6)]
    for n, (gap, wait) in enumerate(zip(gaps, waits, strict=True), start=1):
        assert wait - 0.005 <= gap <= wait + 1.0, (n, gaps, waits)
    # 5 failed reads, then: read, remove the labels alone, re-read, write the annotation.
    assert len(api.gets()) == 7
    assert len(api.patches()) == 2
    assert owned(api.node(NODE)) == {}  # reconciled once the API server came back
    assert foreign(api.node(NODE)) == FOREIGN_LABELS
    metrics = worker.metrics
    assert sample(metrics, "kubevirt_cca_labeller_errors_total", kind="api") == 5
    assert (
        sample(
            metrics,
            "kubevirt_cca_labeller_api_requests_total",
            verb="get",
            resource="nodes",
            outcome="503",
        )
        == 5
    )


async def test_a_failed_write_leaves_the_node_as_it_was(
    api: ClusterAPI, client: AsyncClient, host: Path
) -> None:
    before = {**FOREIGN_LABELS, **ALL_LABELS}
    api.add_node(NODE, labels=dict(before), annotations={})

    def server_error(cluster: ClusterAPI, patch: Any) -> None:
        raise kmock.KubernetesError(status=500, reason="InternalError", message="etcd is gone")

    api.before_patch.append(server_error)
    worker = labeller(client, SwitchableDetector(domcaps("aarch64-no-cca.xml"), host))

    with pytest.raises(KubernetesAPIError, match="500 InternalError: etcd is gone") as caught:
        await worker.reconcile()

    assert caught.value.status == 500
    assert api.node(NODE)["metadata"]["labels"] == before
    assert not worker.ready
    assert await worker.reconcile() is ReconcileResult.PATCHED
    assert owned(api.node(NODE)) == {}


async def test_an_unreachable_api_server_is_an_api_error(host: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    kube = async_client(server=f"http://127.0.0.1:{port}")
    worker = labeller(kube, SwitchableDetector(domcaps("aarch64-cca.xml"), host))
    try:
        with pytest.raises(KubernetesAPIError, match="could not be reached") as caught:
            await worker.reconcile()
    finally:
        await kube.close()
    assert caught.value.status is None
    assert (
        sample(
            worker.metrics,
            "kubevirt_cca_labeller_api_requests_total",
            verb="get",
            resource="nodes",
            outcome="unreachable",
        )
        == 1
    )


async def test_a_missing_node_is_reported_by_name(
    api: ClusterAPI, client: AsyncClient, host: Path
) -> None:
    worker = labeller(client, SwitchableDetector(domcaps("aarch64-cca.xml"), host))

    with pytest.raises(KubernetesAPIError, match="get nodes: 404") as caught:
        await worker.reconcile()

    assert caught.value.status == 404


async def test_an_event_that_cannot_be_recorded_does_not_undo_the_labels(
    api: ClusterAPI, client: AsyncClient, host: Path
) -> None:
    api.add_node(NODE, labels={}, annotations={})
    forbidden = {
        "apiVersion": "v1",
        "kind": "Status",
        "status": "Failure",
        "code": 403,
        "reason": "Forbidden",
        "message": "events is forbidden",
    }
    api[kmock.method.POST, kmock.resource("", "v1", "events")] << 403 << forbidden
    worker = labeller(client, SwitchableDetector(domcaps("aarch64-cca.xml"), host))

    assert await worker.reconcile() is ReconcileResult.PATCHED

    assert owned(api.node(NODE)) == ALL_LABELS
    assert sample(worker.metrics, "kubevirt_cca_labeller_errors_total", kind="event") == 1
    assert (
        sample(
            worker.metrics,
            "kubevirt_cca_labeller_api_requests_total",
            verb="create",
            resource="events",
            outcome="403",
        )
        == 1
    )


# --- Stop, readiness, metrics ------------------------------------------------------------------


async def test_a_stop_request_before_the_write_writes_nothing(
    api: ClusterAPI, client: AsyncClient, host: Path
) -> None:
    api.add_node(NODE, labels={}, annotations={})
    detector = SwitchableDetector(domcaps("aarch64-cca.xml"), host)
    worker: NodeLabeller

    def stop_during_detection() -> DetectionReport:
        worker.request_stop()  # SIGTERM arrives while virsh runs
        return detector()

    worker = labeller(client, stop_during_detection)

    assert await worker.reconcile() is ReconcileResult.INTERRUPTED
    assert api.patches() == []
    assert not worker.ready


async def test_health_endpoints_report_readiness_after_the_first_reconcile(
    api: ClusterAPI, client: AsyncClient, host: Path
) -> None:
    api.add_node(NODE, labels={}, annotations={})
    worker = labeller(client, SwitchableDetector(domcaps("aarch64-cca.xml"), host))
    health = HealthServer(
        ready=lambda: worker.ready,
        registry=worker.metrics.registry,
        host="127.0.0.1",
        port=0,
        not_ready_message="not ready: wait",
    )
    port = health.start()
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/healthz") as response:
                assert response.status == 200
            async with http.get(f"{base}/readyz") as response:
                assert response.status == 503
                assert await response.text() == "not ready: wait\n"
            await worker.reconcile()
            async with http.get(f"{base}/readyz") as response:
                assert response.status == 200
            async with http.get(f"{base}/nothing-here") as response:
                assert response.status == 404
            async with http.post(f"{base}/readyz") as response:
                assert response.status == 405
            async with http.get(f"{base}/metrics") as response:
                assert response.status == 200
                assert response.content_type == "text/plain"
                text = await response.text()
    finally:
        await asyncio.to_thread(health.stop)

    assert "kubevirt_cca_labeller_cca_capable 1.0" in text
    assert 'kubevirt_cca_labeller_measurement_algorithm{algorithm="sha512"} 1.0' in text
    assert 'kubevirt_cca_labeller_reconciles_total{result="patched"} 1.0' in text
    assert (
        'kubevirt_cca_labeller_api_requests_total{outcome="ok",resource="nodes",verb="patch"} 1.0'
    ) in text


async def test_a_busy_health_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        health = HealthServer(
            ready=lambda: True, registry=LabellerMetrics().registry, host="127.0.0.1", port=port
        )
        with pytest.raises(CCAError, match=f"cannot listen on 127.0.0.1:{port}"):
            health.start()


async def test_the_capability_gauge_follows_the_detection(
    api: ClusterAPI, client: AsyncClient, host: Path
) -> None:
    api.add_node(NODE, labels={}, annotations={})
    detector = SwitchableDetector(domcaps("aarch64-cca.xml"), host)
    worker = labeller(client, detector)

    await worker.reconcile()
    assert sample(worker.metrics, "kubevirt_cca_labeller_cca_capable") == 1
    assert (
        sample(worker.metrics, "kubevirt_cca_labeller_measurement_algorithm", algorithm="sha512")
        == 1
    )

    detector.domcaps_file = domcaps("x86_64-sev.xml")
    await worker.reconcile()
    assert sample(worker.metrics, "kubevirt_cca_labeller_cca_capable") == 0
    assert (
        sample(worker.metrics, "kubevirt_cca_labeller_measurement_algorithm", algorithm="sha512")
        == 0
    )


# --- The admin's override of what NVIDIA's libvirt cannot say (issue 22 item 1) ----------------


async def test_the_admins_override_labels_what_nvidias_libvirt_cannot_say(
    api: ClusterAPI, client: AsyncClient, host: Path
) -> None:
    from tests.conftest import DATA

    override = {NODE_HONOURS_OVERRIDE_ANNOTATION: "personalizationValue,measurementLog"}
    api.add_node(NODE, labels=dict(FOREIGN_LABELS), annotations={**FOREIGN_ANNOTATIONS, **override})
    detector = SwitchableDetector(DATA / "domcapabilities" / "aarch64-nvidia-cca.xml", host)
    worker = labeller(client, detector)

    assert await worker.reconcile() is ReconcileResult.PATCHED
    node = api.node(NODE)
    assert owned(node) == {
        NODE_CCA_LABEL: "true",
        NODE_ALGO_LABEL_PREFIX + "sha512": "true",
        "cca.kubevirt.io/personalization-value": "true",
        "cca.kubevirt.io/measurement-log": "true",
    }
    assert detection(node)["evidence"]["adminOverride"]["applied"] == [
        "personalizationValue",
        "measurementLog",
    ]
    assert (
        node["metadata"]["annotations"][NODE_HONOURS_OVERRIDE_ANNOTATION]
        == (override[NODE_HONOURS_OVERRIDE_ANNOTATION])
    )
    assert await worker.reconcile() is ReconcileResult.UNCHANGED

    # The admin takes the log back: the next check removes that label, with an Event.
    api.update_node(
        NODE,
        lambda n: n["metadata"]["annotations"].update(
            {NODE_HONOURS_OVERRIDE_ANNOTATION: "personalizationValue"}
        ),
    )
    assert await worker.reconcile() is ReconcileResult.PATCHED
    assert "cca.kubevirt.io/measurement-log" not in owned(api.node(NODE))
    assert api.events()[-1]["reason"] == "CCAParametersChanged"

    # The host loses CCA: the override keeps nothing.
    detector.domcaps_file = DATA / "domcapabilities" / "aarch64-nvidia-cca-no.xml"
    await worker.reconcile()
    assert owned(api.node(NODE)) == {}
    assert api.node(NODE)["metadata"]["annotations"][NODE_HONOURS_OVERRIDE_ANNOTATION] == (
        "personalizationValue"
    )
