"""Read what ``doctor`` checks from the API server into a doctor ``Snapshot``.

Reads only (the ``kubevirt-cca-doctor`` roles list them), and no Secret. Each read becomes a
``Read``: the object as the API server returned it, ``None`` when it does not exist (404), or
the reason it could not be read (403, ...), so one forbidden read shows up as one failed check,
not a crash. Only an API server that cannot be reached at all is an error.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

from lightkube import AsyncClient
from lightkube.resources.admissionregistration_v1 import (
    MutatingWebhookConfiguration,
    ValidatingAdmissionPolicy,
    ValidatingAdmissionPolicyBinding,
    ValidatingWebhookConfiguration,
)
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.apps_v1 import DaemonSet, Deployment
from lightkube.resources.core_v1 import ConfigMap, Node, Pod, Service
from lightkube.resources.discovery_v1 import EndpointSlice

from kubevirt_cca.adapters.kube import CertificateRequest, KubeVirt, Plugin, call
from kubevirt_cca.constants import CONFIG_MAP_NAME, KUBEVIRT_VMI_CRD
from kubevirt_cca.core.doctor import Read, Snapshot
from kubevirt_cca.core.install.names import (
    CERTIFICATE_CONFIG_MAP,
    LABELLER,
    WEBHOOK,
    WEBHOOK_CONFIGURATION,
    selector,
)
from kubevirt_cca.errors import KubernetesAPIError, KubernetesNotFound, KubernetesUnreachable

POLICY_KINDS: dict[str, Any] = {
    "ValidatingAdmissionPolicy": ValidatingAdmissionPolicy,
    "ValidatingAdmissionPolicyBinding": ValidatingAdmissionPolicyBinding,
}


def _raw(obj: Any) -> dict[str, Any]:
    data: dict[str, Any] = obj.to_dict()
    return data


async def _read(what: str, request: Callable[[], Awaitable[Any]]) -> Read:
    try:
        return Read(value=await call(f"read {what}", request()))
    except KubernetesUnreachable as exc:
        raise KubernetesUnreachable(
            f"cannot reach the API server to read {what}: {exc.detail}", detail=exc.detail
        ) from exc
    except KubernetesNotFound:
        return Read()
    except KubernetesAPIError as exc:
        return Read(error=exc.detail, status=exc.status)


async def _items(listing: AsyncIterable[Any]) -> list[dict[str, Any]]:
    return [_raw(obj) async for obj in listing]


async def _absent_list_is_empty(read: Awaitable[Read]) -> Read:
    """A list of a kind the API server does not serve (its CRD is absent) is an empty list."""
    result = await read
    return Read(value=[]) if result.missing else result


async def read_snapshot(
    client: AsyncClient, *, namespace: str, policies: Sequence[tuple[str, str]], now: datetime
) -> Snapshot:
    """Every read doctor needs, run concurrently."""

    async def get(resource: Any, name: str, ns: str | None = None) -> dict[str, Any]:
        return _raw(await client.get(resource, name, namespace=ns))

    def policy(kind: str, name: str) -> Awaitable[Read]:
        return _read(f"{kind} {name}", lambda: get(POLICY_KINDS[kind], name))

    pod_labels: dict[str, Any] = dict(selector("labeller"))
    slice_labels: dict[str, Any] = {"kubernetes.io/service-name": WEBHOOK}

    reads: dict[str, Awaitable[Read]] = {
        "kubevirts": _absent_list_is_empty(
            _read("KubeVirt objects", lambda: _items(client.list(KubeVirt, namespace="*")))
        ),
        "plugins": _absent_list_is_empty(
            _read("KubeVirt Plugins", lambda: _items(client.list(Plugin)))
        ),
        "config_map": _read("the ConfigMap", lambda: get(ConfigMap, CONFIG_MAP_NAME, namespace)),
        "mutating": _read(
            "the MutatingWebhookConfiguration",
            lambda: get(MutatingWebhookConfiguration, WEBHOOK_CONFIGURATION),
        ),
        "validating": _read(
            "the ValidatingWebhookConfiguration",
            lambda: get(ValidatingWebhookConfiguration, WEBHOOK_CONFIGURATION),
        ),
        "service": _read("the webhook Service", lambda: get(Service, WEBHOOK, namespace)),
        "endpoint_slices": _read(
            "EndpointSlices",
            lambda: _items(client.list(EndpointSlice, namespace=namespace, labels=slice_labels)),
        ),
        # The serving certificate without its Secret (doctor reads no private key): what
        # `certs ensure` publishes, or cert-manager's signed CertificateRequests.
        "certificate_config_map": _read(
            "the certificate ConfigMap",
            lambda: get(ConfigMap, CERTIFICATE_CONFIG_MAP, namespace),
        ),
        # Not found (the API server serves no such kind) stays missing: cert-manager is not
        # installed, which the certificate checks name (core/doctor/webhooks.py).
        "certificate_requests": _read(
            "cert-manager CertificateRequests",
            lambda: _items(client.list(CertificateRequest, namespace=namespace)),
        ),
        "deployment": _read("the webhook Deployment", lambda: get(Deployment, WEBHOOK, namespace)),
        "daemon_set": _read("the labeller DaemonSet", lambda: get(DaemonSet, LABELLER, namespace)),
        "pods": _read(
            "labeller Pods",
            lambda: _items(client.list(Pod, namespace=namespace, labels=pod_labels)),
        ),
        "nodes": _read("Nodes", lambda: _items(client.list(Node))),
        "vmi_crd": _read(
            f"CustomResourceDefinition {KUBEVIRT_VMI_CRD}",
            lambda: get(CustomResourceDefinition, KUBEVIRT_VMI_CRD),
        ),
    }
    policy_reads = {
        (kind, name): policy(kind, name) for kind, name in policies if kind in POLICY_KINDS
    }
    keys = list(reads) + list(policy_reads)
    results = await asyncio.gather(*reads.values(), *policy_reads.values())
    by_key = dict(zip(keys, results, strict=True))
    return Snapshot(
        now=now,
        policies={key: by_key[key] for key in policy_reads},
        **{key: by_key[key] for key in reads},
    )
