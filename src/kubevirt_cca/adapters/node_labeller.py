"""The node labeller's Kubernetes side: read the Node, send the planned JSON patch, repeat.

One :class:`NodeLabeller` per process, for the Node it runs on. Each reconcile runs the
detection (in a worker thread: it may run ``virsh``), reads the Node, asks
:func:`kubevirt_cca.core.node.labelling.plan_node` for the patch and sends it only when it is not
empty, one patch at a time (removals of owned labels go first and alone, see
:class:`~kubevirt_cca.core.node.labelling.NodePlan`). A patch the API server refuses because its
``test`` guard failed (a 422 without causes) or because of a conflict (409) is retried with a
fresh read; a 422 with field causes is an invalid Node (e.g. annotations over 256 KiB),
:class:`~kubevirt_cca.errors.KubernetesInvalid`, not a conflict, and is reported as such at
once; any other API failure ends the reconcile with
:class:`~kubevirt_cca.errors.KubernetesAPIError`, and :meth:`NodeLabeller.run` then waits with
exponential backoff and jitter, leaving the Node's labels as they were. A stop request (SIGTERM)
is honoured between requests: no new write starts after it, and a write already sent is awaited,
so the Node always carries either the old or the new set of keys, never half of one.

Its metrics and readiness (ready after the first reconcile) are served by
:class:`kubevirt_cca.adapters.health.HealthServer`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import Enum
from typing import TypeVar

from lightkube import AsyncClient
from lightkube.models.core_v1 import EventSource, ObjectReference
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Event, Node
from lightkube.types import PatchType
from prometheus_client import CollectorRegistry, Counter, Gauge

from kubevirt_cca.adapters.kube import call
from kubevirt_cca.constants import MEASUREMENT_ALGORITHMS
from kubevirt_cca.core.node.detection_report import DetectionReport
from kubevirt_cca.core.node.labelling import (
    CapabilityEvent,
    KeyChanges,
    NodeMetadata,
    NodePlan,
    plan_node,
)
from kubevirt_cca.core.wire.json_patch import PatchOperation
from kubevirt_cca.errors import (
    KubernetesAPIError,
    KubernetesConflict,
    KubernetesFailedGuard,
    KubernetesInvalid,
    KubernetesUnreachable,
)

LOG = logging.getLogger(__name__)

COMPONENT = "kubevirt-cca-labeller"
# Events about a cluster-scoped Node go to the "default" namespace, as the kubelet's do.
EVENT_NAMESPACE = "default"

T = TypeVar("T")
Detector = Callable[[], DetectionReport]


@dataclass(frozen=True)
class Timing:
    """How often the labeller looks, and how it backs off. Seconds throughout."""

    interval: float = 300.0
    jitter: float = 0.1  # each wait is interval * (1 +- jitter), uniformly
    backoff_initial: float = 1.0
    backoff_max: float | None = None  # None: the interval (never slower than the normal cadence)
    conflict_attempts: int = 5  # reads + patches per reconcile before giving up on conflicts

    def next_interval(self, rng: random.Random) -> float:
        return self.interval * rng.uniform(1.0 - self.jitter, 1.0 + self.jitter)

    def backoff(self, failures: int, rng: random.Random) -> float:
        """The wait after ``failures`` consecutive failures: doubling, capped, half of it random."""
        cap = self.backoff_max if self.backoff_max is not None else self.interval
        ceiling = min(cap, self.backoff_initial * 2.0 ** min(failures - 1, 62))
        return rng.uniform(ceiling / 2.0, ceiling)


class ReconcileResult(Enum):
    UNCHANGED = "unchanged"
    PATCHED = "patched"
    SKIPPED = "skipped"
    INTERRUPTED = "interrupted"  # a stop request came before anything was written


class LabellerMetrics:
    """The labeller's Prometheus metrics, in their own registry (one per labeller)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.capable = Gauge(
            "kubevirt_cca_labeller_cca_capable",
            "1 when the last detection found this node able to run Arm CCA Realms, else 0",
            registry=self.registry,
        )
        self.algorithm = Gauge(
            "kubevirt_cca_labeller_measurement_algorithm",
            "1 for each Realm measurement algorithm the last detection found",
            ["algorithm"],
            registry=self.registry,
        )
        self.reconciles = Counter(
            "kubevirt_cca_labeller_reconciles",
            "Reconciles by result (unchanged, patched, skipped, interrupted, failed)",
            ["result"],
            registry=self.registry,
        )
        self.errors = Counter(
            "kubevirt_cca_labeller_errors",
            "Errors by kind: api (a reconcile failed), conflict (a patch was retried), event "
            "(an Event could not be recorded)",
            ["kind"],
            registry=self.registry,
        )
        self.api_requests = Counter(
            "kubevirt_cca_labeller_api_requests",
            "Requests sent to the Kubernetes API server, by verb, resource and outcome",
            ["verb", "resource", "outcome"],
            registry=self.registry,
        )
        self.last_success = Gauge(
            "kubevirt_cca_labeller_last_success_timestamp_seconds",
            "When the last reconcile finished without error (Unix time)",
            registry=self.registry,
        )

    def record_report(self, report: DetectionReport) -> None:
        self.capable.set(1 if report.capable else 0)
        for algorithm in {*MEASUREMENT_ALGORITHMS, *report.measurement_algorithms}:
            self.algorithm.labels(algorithm).set(
                1 if algorithm in report.measurement_algorithms else 0
            )


class NodeLabeller:
    """Keeps one Node's CCA labels and detection annotation in line with the host."""

    def __init__(
        self,
        *,
        client: AsyncClient,
        node_name: str,
        detector: Detector,
        metrics: LabellerMetrics | None = None,
        timing: Timing | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.node_name = node_name
        self.detector = detector
        self.metrics = metrics if metrics is not None else LabellerMetrics()
        self.timing = timing if timing is not None else Timing()
        self._rng = rng if rng is not None else random.Random()  # noqa: S311 (jitter only)
        self._stop = asyncio.Event()
        self.ready = False
        self.last_report: DetectionReport | None = None
        # What the last reconcile wrote, one entry per patch sent (``labeller --once`` says it).
        self.last_changes: list[KeyChanges] = []
        self.last_annotation_changed = False
        self._skipping: bool | None = None

    def request_stop(self) -> None:
        """Stop after the request in flight (if any); safe to call from a signal handler."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def run(self) -> None:
        """Reconcile every interval (with jitter) until stopped; back off while the API fails."""
        failures = 0
        while not self._stop.is_set():
            try:
                await self.reconcile()
            except KubernetesAPIError as exc:
                failures += 1
                delay = self.timing.backoff(failures, self._rng)
                LOG.warning(
                    "node %s: reconcile failed (%s); labels left as they are, "
                    "next attempt in %.2f s (failure %d in a row)",
                    self.node_name,
                    exc,
                    delay,
                    failures,
                )
            else:
                failures = 0
                delay = self.timing.next_interval(self._rng)
            await self._sleep(delay)
        LOG.info("node %s: labeller stopped", self.node_name)

    async def reconcile(self) -> ReconcileResult:
        """One pass: detect, read, patch when needed. Raises :class:`KubernetesAPIError`."""
        try:
            result = await self._reconcile()
        except KubernetesAPIError:
            self.metrics.reconciles.labels("failed").inc()
            self.metrics.errors.labels("api").inc()
            raise
        self.metrics.reconciles.labels(result.value).inc()
        if result is not ReconcileResult.INTERRUPTED:
            self.metrics.last_success.set(time.time())
            self.ready = True
        return result

    async def _reconcile(self) -> ReconcileResult:
        report = await asyncio.to_thread(self.detector)
        self.last_report = report
        self.last_changes = []
        self.last_annotation_changed = False
        self.metrics.record_report(report)
        conflicts = 0
        wrote = False
        event_sent = False
        while True:
            if self._stop.is_set():
                return ReconcileResult.INTERRUPTED
            node = await self._read_node()
            plan = plan_node(node, report)
            if plan.skipped:
                self._log_skip(True)
                return ReconcileResult.SKIPPED
            self._log_skip(False)
            if not plan.changed:
                LOG.debug("node %s: labels and detection annotation up to date", node.name)
                return ReconcileResult.PATCHED if wrote else ReconcileResult.UNCHANGED
            if self._stop.is_set():
                return ReconcileResult.INTERRUPTED
            try:
                await self._patch_node(plan.patches[0])
            except KubernetesInvalid as exc:
                raise self._invalid(plan, exc) from exc
            except KubernetesAPIError as exc:
                if not _changed_since_read(exc):
                    raise
                conflicts += 1
                self.metrics.errors.labels("conflict").inc()
                LOG.info(
                    "node %s: %s (%s); re-reading (attempt %d of %d)",
                    node.name,
                    _conflict_kind(exc),
                    exc,
                    conflicts,
                    self.timing.conflict_attempts,
                )
                if conflicts >= self.timing.conflict_attempts:
                    raise KubernetesConflict(
                        f"node {self.node_name}: "
                        f"the patch's test guard failed or it conflicted {conflicts} times in a "
                        "row (someone else keeps changing the node's labels or annotations)",
                        status=409,
                    ) from exc
                continue
            wrote = True
            self.last_changes.append(plan.label_changes)
            self.last_annotation_changed |= plan.annotation_changed
            if plan.removes_first:
                LOG.info(
                    "node %s: capable=%s removed labels %s first; writing the rest next",
                    node.name,
                    report.capable,
                    " ".join(plan.label_changes.removed),
                )
            else:
                LOG.info(
                    "node %s: capable=%s labels %s; detection annotation %s",
                    node.name,
                    report.capable,
                    plan.label_changes.describe(),
                    "updated" if plan.annotation_changed else "unchanged",
                )
            if plan.event is not None and not event_sent:
                event_sent = True
                await self._record_event(node, plan.event)
            if not plan.removes_first:
                return ReconcileResult.PATCHED

    def _invalid(self, plan: NodePlan, exc: KubernetesInvalid) -> KubernetesInvalid:
        """The API server refused the patched Node as invalid: no retry can help."""
        what = (
            "removing the labels" if plan.removes_first else "the detection annotation and labels"
        )
        return KubernetesInvalid(
            f"node {self.node_name}: the API server refused {what} as an invalid Node "
            f"({'; '.join(exc.causes)}); this is not a conflict, "
            "retrying the same patch cannot help (a Node's annotations may hold 256 KiB together: "
            "other writers' annotations may leave no room for the detection report)",
            status=exc.status,
            detail=exc.detail,
            causes=exc.causes,
        )

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)

    def _log_skip(self, skipping: bool) -> None:
        if skipping != self._skipping:
            if skipping:
                LOG.info(
                    "node %s: annotated node-labeller.kubevirt.io/skip-node; "
                    "leaving its labels and annotations alone",
                    self.node_name,
                )
            elif self._skipping is not None:
                LOG.info("node %s: skip-node annotation gone; labelling again", self.node_name)
        self._skipping = skipping

    async def _read_node(self) -> NodeMetadata:
        node = await self._call("get", "nodes", self.client.get(Node, self.node_name))
        read = NodeMetadata.from_object(node.to_dict())
        return read if read.name else replace(read, name=self.node_name)

    async def _patch_node(self, patch: tuple[PatchOperation, ...]) -> None:
        operations = [dict(op) for op in patch]
        await self._call(
            "patch",
            "nodes",
            self.client.patch(Node, self.node_name, operations, patch_type=PatchType.JSON),
        )

    async def _record_event(self, node: NodeMetadata, event: CapabilityEvent) -> None:
        """Create a core/v1 Event on the Node; a failure is logged and counted, not raised."""
        now = datetime.now(UTC)
        body = Event(
            metadata=ObjectMeta(name=f"{node.name}.{time.time_ns():x}", namespace=EVENT_NAMESPACE),
            involvedObject=ObjectReference(
                apiVersion="v1", kind="Node", name=node.name, uid=node.uid
            ),
            reason=event.reason,
            message=event.message,
            type=event.type.value,
            source=EventSource(component=COMPONENT, host=node.name),
            firstTimestamp=now,
            lastTimestamp=now,
            count=1,
            reportingComponent=COMPONENT,
            reportingInstance=node.name,
        )
        try:
            await self._call("create", "events", self.client.create(body))
        except KubernetesAPIError as exc:
            self.metrics.errors.labels("event").inc()
            LOG.warning("node %s: could not record Event %s: %s", node.name, event.reason, exc)
        else:
            LOG.info("node %s: Event %s: %s", node.name, event.reason, event.message)

    async def _call(self, verb: str, resource: str, request: Awaitable[T]) -> T:
        """Await one API request, count it, and translate the client's exceptions."""
        counter = self.metrics.api_requests
        try:
            result = await call(f"{verb} {resource}", request)
        except KubernetesAPIError as exc:
            counter.labels(verb, resource, _outcome(exc)).inc()
            raise
        counter.labels(verb, resource, "ok").inc()
        return result


def _outcome(exc: KubernetesAPIError) -> str:
    """The metric's outcome label: the HTTP status, ``unreachable`` or ``malformed``."""
    if exc.status is not None:
        return str(exc.status)
    return "unreachable" if isinstance(exc, KubernetesUnreachable) else "malformed"


def _changed_since_read(exc: KubernetesAPIError) -> bool:
    """A 409, or a 422 without causes (a failed ``test`` guard): read and decide again."""
    return isinstance(exc, KubernetesConflict | KubernetesFailedGuard)


def _conflict_kind(exc: KubernetesAPIError) -> str:
    if isinstance(exc, KubernetesConflict):
        return "the patch conflicted"
    return "the patch's test guard failed: the node changed since it was read"
