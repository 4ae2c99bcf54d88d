"""Keep the self-signed webhook certificate in its Secret and its CA in the webhook configurations.

Used by ``kubevirt-cca certs ensure``, the certificate Job and CronJob when cert-manager is not
installed. Several replicas may run it at once: every write is a JSON merge patch carrying the
``resourceVersion`` it read (a create, none), so a conflict (409, :class:`KubernetesConflict`)
means another replica wrote first, and the step is read and decided again. A merge patch
replaces a list whole, so the ``webhooks`` list is sent complete, as read, with only the
``caBundle`` changed. The certificate's public half (``tls.crt``, ``ca.crt``) also goes into a
ConfigMap the install creates empty, for ``doctor`` (which reads no Secret). Reads and writes
only what the ``kubevirt-cca-certs`` roles allow: get/create/patch of the one Secret, get/patch
of the two webhook configurations and of that ConfigMap.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import os
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from lightkube import AsyncClient
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.admissionregistration_v1 import (
    MutatingWebhookConfiguration,
    ValidatingWebhookConfiguration,
)
from lightkube.resources.core_v1 import ConfigMap, Secret
from lightkube.types import PatchType

from kubevirt_cca.adapters.kube import call
from kubevirt_cca.core.certs import CA_CRT, TLS_CRT, TLS_KEY, Action, Plan, plan
from kubevirt_cca.errors import KubernetesAPIError, KubernetesConflict, KubernetesNotFound

LOG = logging.getLogger(__name__)
ATTEMPTS = 5
T = TypeVar("T")


@dataclass(frozen=True)
class Outcome:
    plan: Plan
    patched: tuple[str, ...]  # the webhook configurations whose caBundle changed
    published: str | None = None  # the ConfigMap the public certificate was written to


async def _get_or_none(what: str, request: Awaitable[T]) -> T | None:
    try:
        return await call(what, request)
    except KubernetesNotFound:
        return None


async def _retrying(what: str, step: Callable[[], Awaitable[T]]) -> T:
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return await step()
        except KubernetesConflict:
            LOG.info(
                "%s: changed by another writer (attempt %d of %d); reading again",
                what,
                attempt,
                ATTEMPTS,
            )
    raise KubernetesAPIError(f"{what}: still conflicting after {ATTEMPTS} attempts")


def _decoded(secret: Secret | None) -> dict[str, bytes] | None:
    """The Secret's data; a value that is not base64 counts as absent (so it is replaced)."""
    if secret is None:
        return None
    data = {}
    for key, value in (secret.data or {}).items():
        try:
            data[key] = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError, TypeError):
            LOG.warning("Secret key %s is not base64; the certificate will be replaced", key)
    return data


async def ensure_secret(
    client: AsyncClient, *, namespace: str, name: str, dns_names: Sequence[str], now: datetime
) -> Plan:
    """The Secret holds a valid certificate for ``dns_names`` afterwards; returns what was done."""
    what = f"Secret {namespace}/{name}"

    async def step() -> Plan:
        secret = await _get_or_none(f"get {what}", client.get(Secret, name, namespace=namespace))
        decided = plan(_decoded(secret), now=now, dns_names=dns_names)
        if decided.action is Action.KEEP:
            return decided
        data = {k: base64.b64encode(v).decode() for k, v in decided.material.data.items()}
        if secret is None:
            body = Secret(
                metadata=ObjectMeta(
                    name=name,
                    namespace=namespace,
                    labels={
                        "app.kubernetes.io/name": "kubevirt-cca",
                        "app.kubernetes.io/component": "webhook",
                    },
                ),
                type="kubernetes.io/tls",
                data=data,
            )
            await call(f"create {what}", client.create(body))
        else:
            version = secret.metadata.resourceVersion if secret.metadata else None
            await call(
                f"patch {what}",
                client.patch(
                    Secret,
                    name,
                    {"metadata": {"resourceVersion": version}, "data": data},
                    namespace=namespace,
                    patch_type=PatchType.MERGE,
                ),
            )
        LOG.info("%s: %s (%s)", what, decided.action.value, decided.reason)
        return decided

    return await _retrying(what, step)


async def ensure_ca_bundle(client: AsyncClient, *, name: str, bundle: bytes) -> list[str]:
    """Set ``caBundle`` on every webhook of the Mutating- and ValidatingWebhookConfiguration."""
    encoded = base64.b64encode(bundle).decode()
    patched = []
    kinds: list[Any] = [MutatingWebhookConfiguration, ValidatingWebhookConfiguration]
    for kind in kinds:
        what = f"{kind.__name__} {name}"

        async def step(kind: Any = kind, what: str = what) -> bool:
            config = await _get_or_none(f"get {what}", client.get(kind, name))
            if config is None:
                raise KubernetesAPIError(
                    f"{what} does not exist yet: apply the whole install "
                    "(it is created with the webhook); the certificate Job retries",
                    status=404,
                )
            stale = [h for h in config.webhooks or [] if h.clientConfig.caBundle != encoded]
            if not stale:
                return False
            for hook in stale:
                hook.clientConfig.caBundle = encoded
            body = {
                "metadata": {"resourceVersion": config.metadata.resourceVersion},
                "webhooks": [h.to_dict() for h in config.webhooks],
            }
            await call(f"patch {what}", client.patch(kind, name, body, patch_type=PatchType.MERGE))
            return True

        if await _retrying(what, step):
            LOG.info("%s: caBundle set", what)
            patched.append(what)
    return patched


async def publish_certificate(
    client: AsyncClient, *, namespace: str, name: str, material: Plan
) -> bool:
    """Write ``tls.crt`` and ``ca.crt`` (public) into the ConfigMap ``name``, which the install
    creates empty; ``True`` when it changed. A missing ConfigMap is a warning, not a failure:
    only ``doctor`` reads it, and the certificate itself is in place."""
    what = f"ConfigMap {namespace}/{name}"
    wanted = {key: material.material.data[key].decode("ascii") for key in (TLS_CRT, CA_CRT)}

    async def step() -> bool:
        found = await _get_or_none(f"get {what}", client.get(ConfigMap, name, namespace=namespace))
        if found is None:
            LOG.warning(
                "%s is missing (an install from before it existed?): "
                "doctor cannot check the certificate until the install is re-applied",
                what,
            )
            return False
        if {k: (found.data or {}).get(k) for k in wanted} == wanted:
            return False
        version = found.metadata.resourceVersion if found.metadata else None
        body = {"metadata": {"resourceVersion": version}, "data": wanted}
        await call(
            f"patch {what}",
            client.patch(ConfigMap, name, body, namespace=namespace, patch_type=PatchType.MERGE),
        )
        LOG.info("%s: public certificate written", what)
        return True

    return await _retrying(what, step)


def write_files(folder: Path, plan_: Plan) -> None:
    """tls.crt, tls.key (owner-only) and ca.crt for the webhook server, replaced atomically.

    Written without following symlinks: each file goes to a new temporary name created
    exclusively (``O_EXCL``: a link or file planted there is refused, never written through),
    its mode set before the first byte, synced, then renamed over the target (a rename replaces
    a link at the target; it never writes to where the link points). All relative to the folder
    opened once, so the folder cannot be swapped between the steps.
    """
    folder.mkdir(parents=True, exist_ok=True)
    directory = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for key, mode in ((TLS_CRT, 0o644), (TLS_KEY, 0o600), (CA_CRT, 0o644)):
            _write_one(directory, key, plan_.material.data[key], mode)
        os.fsync(directory)
    finally:
        os.close(directory)


def _write_one(directory: int, name: str, data: bytes, mode: int) -> None:
    temporary = f".{name}.{secrets.token_hex(8)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    descriptor = os.open(temporary, flags, 0o600, dir_fd=directory)
    try:
        os.fchmod(descriptor, mode)
        with os.fdopen(descriptor, "wb", closefd=False) as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, name, src_dir_fd=directory, dst_dir_fd=directory)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary, dir_fd=directory)
        raise
    finally:
        os.close(descriptor)


async def ensure(
    client: AsyncClient,
    *,
    namespace: str,
    secret: str,
    webhook_configuration: str,
    dns_names: Sequence[str],
    now: datetime,
    write_dir: Path | None,
    config_map: str | None = None,
) -> Outcome:
    decided = await ensure_secret(
        client, namespace=namespace, name=secret, dns_names=dns_names, now=now
    )
    # Read back what is stored: another replica may have won the race with its own CA.
    stored = _decoded(await call("get Secret", client.get(Secret, secret, namespace=namespace)))
    final = plan(stored, now=now, dns_names=dns_names)
    if final.action is not Action.KEEP:
        raise KubernetesAPIError(f"Secret {namespace}/{secret} changed under us: {final.reason}")
    patched = await ensure_ca_bundle(
        client, name=webhook_configuration, bundle=final.material.ca_bundle
    )
    published = None
    if config_map and await publish_certificate(
        client, namespace=namespace, name=config_map, material=final
    ):
        published = f"ConfigMap {namespace}/{config_map}"
    if write_dir is not None:
        try:
            write_files(write_dir, final)
        except OSError as exc:
            raise KubernetesAPIError(
                f"cannot write the certificate into {write_dir}: {exc.strerror or exc}"
            ) from exc
    return Outcome(
        plan=Plan(decided.action, final.material, decided.reason),
        patched=tuple(patched),
        published=published,
    )
