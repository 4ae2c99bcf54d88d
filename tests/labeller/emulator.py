"""The Kubernetes API the labeller tests talk to: kmock's emulator over real HTTP, plus JSON patch.

kmock's ``KubernetesEmulator`` stores objects and serves them like an API server, but applies a
JSON patch without the API server's rules. ``ClusterAPI`` adds what the labeller depends on,
as a real API server does it:

- an RFC 6902 patch whose ``test`` fails (or that cannot apply) is refused with HTTP 422
  ``Invalid`` and changes nothing;
- every write bumps ``metadata.resourceVersion``;
- ``before_patch``: one-shot hooks run when a JSON patch arrives, before it applies, to play a
  concurrent writer (change the Node between the labeller's read and its write), a failing
  server (raise a ``kmock.KubernetesError``), or a slow one (sleep).

Everything else (fetch, create, the request log, error injection with the ``<<`` DSL) is
kmock's own.
"""

from __future__ import annotations

import collections
import copy
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp.web
import attrs
import jsonpatch
import jsonpointer
import kmock
from kmock._internal import apps

NODES = kmock.resource("", "v1", "nodes")
EVENTS = kmock.resource("", "v1", "events")

PatchHook = Callable[["ClusterAPI", list[dict[str, Any]]], Awaitable[None] | None]


@attrs.define(kw_only=True)
class ClusterAPI(kmock.KubernetesEmulator):
    before_patch: list[PatchHook] = attrs.field(factory=list)
    revision: int = 100
    # Requests by HTTP method, kept even when kmock's own request log is trimmed (benchmarks).
    methods: collections.Counter[str] = attrs.field(factory=collections.Counter)

    def add_node(
        self,
        name: str,
        *,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
    ) -> None:
        metadata: dict[str, Any] = {
            "name": name,
            "uid": f"uid-{name}",
            "resourceVersion": self._next_revision(),
        }
        if labels is not None:
            metadata["labels"] = dict(labels)
        if annotations is not None:
            metadata["annotations"] = dict(annotations)
        self.objects[NODES, None, name] = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": metadata,
            "spec": {},
            "status": {},
        }

    def node(self, name: str) -> dict[str, Any]:
        return copy.deepcopy(self.objects[NODES, None, name].raw)

    def node_versions(self, name: str) -> int:
        return len(self.objects[NODES, None, name].history)

    def update_node(self, name: str, change: Callable[[dict[str, Any]], None]) -> None:
        """Another writer changes the Node (a new version, a new resourceVersion)."""
        new = self.node(name)
        change(new)
        new["metadata"]["resourceVersion"] = self._next_revision()
        self.objects[NODES, None, name].history.append(new)

    def events(self) -> list[dict[str, Any]]:
        return [
            obj.raw
            for (resource, _, _), obj in self.objects.items()
            if resource == EVENTS and not obj.deleted
        ]

    def patches(self) -> list[kmock.Request]:
        return [r for r in self if r.action == kmock.action.UPDATE]

    def gets(self) -> list[kmock.Request]:
        return [r for r in self if r.action == kmock.action.FETCH and r.resource == NODES]

    def forget_requests(self) -> None:
        """Drop kmock's request log (it is scanned on every request); ``methods`` keeps counting."""
        del self._requests[:]

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        self.methods[str(request.method.value)] += 1
        if request.action == kmock.action.UPDATE and isinstance(request.data, list):
            await self._json_patch(request)
            # Serve through kmock's reactions and fallbacks, skipping the emulator's own
            # (RFC-less) patching, which this method has done properly.
            return await apps.RawHandler._handle(self, request)
        return await super()._handle(request)

    async def _json_patch(self, request: kmock.Request) -> None:
        if self.before_patch:
            outcome = self.before_patch.pop(0)(self, request.data)
            if inspect.isawaitable(outcome):
                await outcome
        async with self._lock:
            if request.resource is None or request.name is None:  # no one object named
                raise kmock.KubernetesObjectNotFoundError()
            key = (request.resource, request.namespace, request.name)
            if key not in self.objects or self.objects[key].deleted:
                raise kmock.KubernetesObjectNotFoundError()
            current = copy.deepcopy(self.objects[key].raw)
            try:
                new = jsonpatch.apply_patch(current, request.data)
            except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
                # What the API server answers for a failed test op or an unappliable patch.
                raise kmock.KubernetesError(
                    status=422,
                    reason="Invalid",
                    message=f"the server rejected our request due to an error in our "
                    f"request: {exc}",
                    details={"name": request.name, "kind": "nodes"},
                ) from exc
            new.setdefault("metadata", {})["resourceVersion"] = self._next_revision()
            self.objects[key].history.append(new)

    def _next_revision(self) -> str:
        self.revision += 1
        return str(self.revision)
