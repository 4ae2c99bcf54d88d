"""``kubevirt-cca uninstall`` against the API server: the steps that
``core/install/uninstall_plan.py`` plans.

Every request goes through :func:`~kubevirt_cca.adapters.kube.call`. With ``dry_run`` every
delete and patch is sent with ``dryRun=All``: the API server checks it (permissions, admission)
and stores nothing, so the dry run reports what the real run would do, object by object.
An object that is not there (or whose kind the cluster does not serve, such as PodMonitor
without prometheus-operator) counts as absent, not as an error.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass, field
from typing import Any

from lightkube import AsyncClient
from lightkube.core.exceptions import LoadResourceError
from lightkube.core.resource_registry import resource_registry
from lightkube.generic_resource import create_global_resource, create_namespaced_resource
from lightkube.resources.core_v1 import Node
from lightkube.types import CascadeType, PatchType

from kubevirt_cca.adapters.kube import VirtualMachine, VirtualMachineInstance, call
from kubevirt_cca.core.install.uninstall_plan import (
    NODE_LABELS,
    ObjectRef,
    Step,
    cca_users,
    node_cleanup,
)
from kubevirt_cca.errors import KubernetesAPIError

logger = logging.getLogger(__name__)

NOT_FOUND = 404


@dataclass
class StepResult:
    """What one step did (or, in a dry run, would do)."""

    name: str
    removed: list[str] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def line(self, *, dry_run: bool) -> str:
        verb = "would remove" if dry_run else "removed"
        if not self.removed:
            text = f"{self.name}: nothing to remove"
        else:
            text = f"{self.name}: {verb} {', '.join(self.removed)}"
        if self.absent:
            text += f" ({len(self.absent)} not present)"
        if self.skipped:
            text += f"; left alone (KubeVirt's skip-node annotation): {', '.join(self.skipped)}"
        return text


def _plural(kind: str) -> str:
    lower = kind.lower()
    return f"{lower[:-1]}ies" if lower.endswith("y") else f"{lower}s"


def resource_of(ref: ObjectRef) -> Any:
    """lightkube's class for the object's kind: the built-in model, else a generic resource."""
    try:
        return resource_registry.load(ref.api_version, ref.kind)
    except LoadResourceError:
        group, _, version = ref.api_version.rpartition("/")
        create = create_namespaced_resource if ref.namespace else create_global_resource
        return create(group, version, ref.kind, _plural(ref.kind))


async def _delete(client: AsyncClient, ref: ObjectRef, *, dry_run: bool) -> bool:
    """Delete one object; ``False`` when it is not there."""
    try:
        await call(
            f"delete {ref}",
            # Background: the object goes now and the garbage collector removes what it owns
            # (a Job's default would orphan its pods and keep the Job until they are handled).
            client.delete(
                resource_of(ref),
                ref.name,
                namespace=ref.namespace,
                cascade=CascadeType.BACKGROUND,
                dry_run=dry_run,
            ),
        )
    except KubernetesAPIError as exc:
        if exc.status == NOT_FOUND:
            return False
        raise
    return True


async def _collect(listing: AsyncIterable[Any]) -> list[dict[str, Any]]:
    return [dict(obj.to_dict()) async for obj in listing]


async def _items(what: str, listing: AsyncIterable[Any]) -> list[dict[str, Any]]:
    """A list's objects as dicts; a kind the cluster does not serve is an empty list."""
    try:
        return await call(what, _collect(listing))
    except KubernetesAPIError as exc:
        if exc.status == NOT_FOUND:
            return []
        raise


async def cca_workloads(client: AsyncClient) -> list[str]:
    """The VMIs and VMs in any namespace that ask for CCA."""
    vmis = await _items(
        "list virtualmachineinstances", client.list(VirtualMachineInstance, namespace="*")
    )
    vms = await _items("list virtualmachines", client.list(VirtualMachine, namespace="*"))
    return cca_users([*vmis, *vms])


async def _clean_nodes(client: AsyncClient, result: StepResult, *, dry_run: bool) -> None:
    for node in await _items("list nodes", client.list(Node)):
        cleanup = node_cleanup(node)
        if cleanup.skipped and (cleanup.labels or cleanup.annotation):
            result.skipped.append(cleanup.node)
            continue
        if not cleanup.changes:
            continue
        await call(
            f"patch node {cleanup.node}",
            client.patch(
                Node,
                cleanup.node,
                cleanup.patch,
                patch_type=PatchType.MERGE,
                dry_run=dry_run,
            ),
        )
        keys = [*cleanup.labels, *(["annotation"] if cleanup.annotation else [])]
        result.removed.append(f"node {cleanup.node} ({len(keys)} keys)")
        logger.info(
            "uninstall node=%s removed=%s dry_run=%s", cleanup.node, ",".join(keys), dry_run
        )


async def run_steps(
    client: AsyncClient,
    steps: list[Step],
    *,
    dry_run: bool,
    report: Callable[[StepResult], None],
) -> None:
    """Run the steps in order, reporting each when it is done; stops at the first error."""
    for step in steps:
        result = StepResult(step.name)
        if step.name == NODE_LABELS:
            await _clean_nodes(client, result, dry_run=dry_run)
        for ref in step.objects:
            if await _delete(client, ref, dry_run=dry_run):
                result.removed.append(str(ref))
                logger.info("uninstall deleted=%s dry_run=%s", ref, dry_run)
            else:
                result.absent.append(str(ref))
        report(result)
