"""The cluster state admission reads, kept current by watches (no API round trip per review).

Three sources, each listed then watched, re-listed after any error:

- the KubeVirt CR(s) in KubeVirt's namespace: the feature gates. Until the first successful
  list, and whenever a re-list fails, the gates are unknown and CCA objects are refused
  (fail closed), with the reason in the message;
- the ``kubevirt-cca-config`` ConfigMap in our namespace: dialect, firmware, virtio IOMMU
  policy and hook image (absent: the defaults);
- VMIs carrying the CCA label, cluster-wide: a migration of one of them is refused without an
  API call. A VMI not in the cache is fetched once (migrations are rare), and a failed fetch
  refuses the migration;
- KubeVirt's ``Plugin`` objects (cluster-scoped, VEP 190): with the gates and the ConfigMap's
  ``integrationMode`` they decide the integration mode. A cluster without the Plugin CRD
  (KubeVirt before 1.9) has none; a list that fails otherwise leaves them unknown, and CCA
  objects are refused where that matters (fail closed);
- the labels of nodes labelled ``kubevirt.io/cca=true``: admission warns when no node honours
  what a VMI asks for. Not needed for readiness; while unknown, nothing is warned.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lightkube import AsyncClient, operators
from lightkube.resources.core_v1 import ConfigMap, Node

from kubevirt_cca.adapters.kube import KubeVirt, Plugin, VirtualMachineInstance, call
from kubevirt_cca.adapters.kube import stream as kube_stream
from kubevirt_cca.constants import CONFIG_MAP_NAME, ENABLED_LABEL, NODE_CCA_LABEL
from kubevirt_cca.core.admission.gates import ClusterView, build_view
from kubevirt_cca.core.admission.validate import VMILookup
from kubevirt_cca.core.wire.objects import labels_of, metadata_of
from kubevirt_cca.errors import KubernetesAPIError, KubernetesNotFound

logger = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)


@dataclass
class _Source:
    """One listed-and-watched collection: its objects, and whether the last list worked."""

    what: str
    objects: dict[Key, dict[str, Any]] = field(default_factory=dict)
    synced: bool = False
    attempted: bool = False
    problem: str | None = "not listed yet"

    def replace(self, items: list[dict[str, Any]]) -> None:
        self.objects = {_key(item): item for item in items}
        self.synced, self.attempted, self.problem = True, True, None

    def apply(self, event: str, obj: dict[str, Any]) -> None:
        if event == "DELETED":
            self.objects.pop(_key(obj), None)
        elif event in ("ADDED", "MODIFIED"):
            self.objects[_key(obj)] = obj

    def fail(self, problem: str) -> None:
        self.attempted, self.problem = True, problem


class ClusterState:
    """Watch-fed view of the cluster for the webhook. ``start()`` it, then read ``view()``."""

    def __init__(
        self,
        client: AsyncClient,
        *,
        namespace: str,
        kubevirt_namespace: str,
        retry_delay: float = 5.0,
    ) -> None:
        self._client = client
        self._namespace = namespace
        self._kubevirt_namespace = kubevirt_namespace
        self._retry_delay = retry_delay
        self._kubevirt = _Source("KubeVirt CR")
        self._config = _Source(f"ConfigMap {namespace}/{CONFIG_MAP_NAME}")
        self._vmis = _Source("CCA VMIs")
        self._plugins = _Source("KubeVirt Plugins")
        self._nodes = _Source("CCA nodes")
        self._plugin_crd_missing = False
        # How long to wait before looking again for a Plugin CRD that does not exist.
        self.plugin_crd_recheck = 60.0
        self._tasks: list[asyncio.Task[None]] = []
        self._view: ClusterView = ClusterView(gates=None, gates_problem="not listed yet")

    @property
    def ready(self) -> bool:
        """Every source has been listed at least once (successfully or not)."""
        return all(s.attempted for s in (self._kubevirt, self._config, self._vmis, self._plugins))

    def view(self) -> ClusterView:
        return self._view

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(
                self._follow(self._kubevirt, self._list_kubevirt, self._watch_kubevirt)
            ),
            asyncio.create_task(self._follow(self._config, self._list_config, self._watch_config)),
            asyncio.create_task(self._follow(self._vmis, self._list_vmis, self._watch_vmis)),
            asyncio.create_task(
                self._follow(self._plugins, self._list_plugins, self._watch_plugins)
            ),
            asyncio.create_task(self._follow(self._nodes, self._list_nodes, self._watch_nodes)),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def lookup_vmi(self, namespace: str, name: str) -> VMILookup:
        """The VMI a migration names: from the cache when it is a CCA VMI, else fetched."""
        cached = self._vmis.objects.get((namespace, name))
        if cached is not None:
            return VMILookup(vmi=cached)
        try:
            obj = await call(
                "get VMI", self._client.get(VirtualMachineInstance, name, namespace=namespace)
            )
        except KubernetesNotFound:
            return VMILookup(vmi=None)
        except KubernetesAPIError as exc:
            return VMILookup(problem=_problem(exc))
        return VMILookup(vmi=_as_dict(obj))

    # --- the watch loop ------------------------------------------------------------------------

    async def _follow(
        self,
        source: _Source,
        lister: Callable[[], Any],
        watcher: Callable[[str | None], AsyncIterator[tuple[str, dict[str, Any]]]],
    ) -> None:
        while True:
            listed = False
            try:
                items, version = await call(f"list {source.what}", lister())
                source.replace(items)
                listed = True
                self._refresh()
                logger.info("cluster state listed source=%r objects=%d", source.what, len(items))
                async for event, obj in watcher(version):
                    source.apply(event, obj)
                    self._refresh()
            except KubernetesAPIError as exc:
                # A failed list makes the source unknown (CCA objects are refused); a failed
                # watch after a good list keeps the listed state until the next list.
                if not listed:
                    source.fail(_problem(exc))
                    self._refresh()
                logger.warning(
                    "cluster state interrupted source=%r listed=%s problem=%r retry_in=%.1fs",
                    source.what,
                    listed,
                    str(exc),
                    self._retry_delay,
                )
            except Exception as exc:
                # Anything else (an undecodable answer, a bug) must not end this loop: a dead
                # watch would leave the cache frozen. The source becomes unknown (fail closed)
                # until a fresh list works.
                source.fail(f"unexpected {type(exc).__name__}: {exc}")
                self._refresh()
                logger.exception(
                    "cluster state failed source=%r retry_in=%.1fs", source.what, self._retry_delay
                )
            await asyncio.sleep(self._retry_delay)

    def _refresh(self) -> None:
        view = _build_view(self._kubevirt, self._config, self._kubevirt_namespace, self._plugins)
        if self._nodes.synced and self._nodes.problem is None:
            view = dataclasses.replace(
                view,
                cca_node_labels=tuple(labels_of(node) for node in self._nodes.objects.values()),
            )
        self._view = view

    async def _list_nodes(self) -> tuple[list[dict[str, Any]], str | None]:
        listing = self._client.list(Node, labels={NODE_CCA_LABEL: "true"})
        nodes = [_slim_node(_as_dict(o)) async for o in listing]
        return ([n for n in nodes if labels_of(n).get(NODE_CCA_LABEL) == "true"], _version(listing))

    async def _watch_nodes(self, version: str | None) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        stream = self._client.watch(Node, labels={NODE_CCA_LABEL: "true"}, resource_version=version)
        async for event, obj in _watched(stream):
            node = _slim_node(obj)
            # A node that lost the label leaves the cache (it matches no more).
            yield (event if labels_of(node).get(NODE_CCA_LABEL) == "true" else "DELETED"), node

    async def _list_kubevirt(self) -> tuple[list[dict[str, Any]], str | None]:
        listing = self._client.list(KubeVirt, namespace=self._kubevirt_namespace)
        return [_as_dict(o) async for o in listing], _version(listing)

    async def _list_config(self) -> tuple[list[dict[str, Any]], str | None]:
        listing = self._client.list(
            ConfigMap, namespace=self._namespace, fields={"metadata.name": CONFIG_MAP_NAME}
        )
        items = [_as_dict(o) async for o in listing]
        return [i for i in items if _key(i)[1] == CONFIG_MAP_NAME], _version(listing)

    async def _list_vmis(self) -> tuple[list[dict[str, Any]], str | None]:
        listing = self._client.list(
            VirtualMachineInstance, namespace="*", labels={ENABLED_LABEL: operators.exists()}
        )
        items = [_as_dict(o) async for o in listing]
        return [i for i in items if _labelled(i)], _version(listing)

    async def _list_plugins(self) -> tuple[list[dict[str, Any]], str | None]:
        listing = self._client.list(Plugin)
        try:
            items = await call("list KubeVirt Plugins", _collected(listing))
        except KubernetesNotFound:
            self._plugin_crd_missing = True  # no Plugin CRD: this KubeVirt has no Plugins
            return [], None
        self._plugin_crd_missing = False
        return items, _version(listing)

    async def _watch_plugins(
        self, version: str | None
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        if self._plugin_crd_missing:
            # Nothing to watch; look for the CRD again later (KubeVirt may be upgraded).
            await asyncio.sleep(self.plugin_crd_recheck)
            return
        stream = self._client.watch(Plugin, resource_version=version)
        async for event, obj in _watched(stream):
            yield event, obj

    async def _watch_kubevirt(
        self, version: str | None
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        stream = self._client.watch(
            KubeVirt, namespace=self._kubevirt_namespace, resource_version=version
        )
        async for event, obj in _watched(stream):
            yield event, obj

    async def _watch_config(self, version: str | None) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        stream = self._client.watch(
            ConfigMap,
            namespace=self._namespace,
            fields={"metadata.name": CONFIG_MAP_NAME},
            resource_version=version,
        )
        async for event, obj in _watched(stream):
            if _key(obj)[1] == CONFIG_MAP_NAME:
                yield event, obj

    async def _watch_vmis(self, version: str | None) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        stream = self._client.watch(
            VirtualMachineInstance,
            namespace="*",
            labels={ENABLED_LABEL: operators.exists()},
            resource_version=version,
        )
        async for event, obj in _watched(stream):
            # A VMI whose label went away leaves the cache (it matches no more).
            yield (event if _labelled(obj) else "DELETED"), obj


def _slim_node(node: Mapping[str, Any]) -> dict[str, Any]:
    """Only what admission reads of a Node (its name and labels): nodes are big objects."""
    return {"metadata": {"name": metadata_of(node).get("name"), "labels": dict(labels_of(node))}}


def _build_view(
    kubevirt: _Source, config: _Source, kubevirt_namespace: str, plugins: _Source | None = None
) -> ClusterView:
    config_ok = config.synced or config.problem is None
    kubevirt_ok = kubevirt.synced and kubevirt.problem is None
    plugin_names: frozenset[str] | None = frozenset()
    if plugins is not None:
        listed = plugins.synced and plugins.problem is None
        plugin_names = frozenset(name for _, name in plugins.objects) if listed else None
    return build_view(
        kubevirts=kubevirt.objects.values() if kubevirt_ok else None,
        kubevirts_problem=kubevirt.problem,
        kubevirt_namespace=kubevirt_namespace,
        config_data=next(iter(config.objects.values()), {}).get("data"),
        config_unreadable=None if config_ok else config.problem,
        plugin_names=plugin_names,
        plugins_problem=None if plugins is None else plugins.problem,
    )


async def _watched(
    stream: AsyncIterable[tuple[str, Any]],
) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    async for event, obj in kube_stream("watch", stream):
        yield event, _as_dict(obj)


async def _collected(listing: AsyncIterable[Any]) -> list[dict[str, Any]]:
    return [_as_dict(o) async for o in listing]


def _problem(exc: KubernetesAPIError) -> str:
    """How a failed read reads in a refusal (the owner's message names the source)."""
    if exc.status is None:
        return exc.detail
    return f"the API server answered {exc.detail}"


def _as_dict(obj: Any) -> dict[str, Any]:
    """A lightkube object as plain JSON data (``to_dict`` is untyped in lightkube)."""
    data = obj.to_dict()
    return data if isinstance(data, dict) else {}


def _version(listing: Any) -> str | None:
    version = getattr(listing, "_resourceVersion", None)
    return version if isinstance(version, str) and version else None


def _key(obj: Mapping[str, Any]) -> Key:
    meta = metadata_of(obj)
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _labelled(obj: Mapping[str, Any]) -> bool:
    return ENABLED_LABEL in labels_of(obj)
