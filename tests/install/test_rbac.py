"""Least privilege, measured: each component runs against kmock's Kubernetes emulator over real
HTTP, every request it makes is recorded as (verb, resource, namespace, name), and the install's
RBAC must grant every one of them (enough) and nothing that none of them used (no more).

Components: the labeller (the real command, ``--once``), the webhook's watch-fed cluster state
(list, watch, and the one-off VMI fetch for a migration), ``certs ensure`` (self-signed mode),
and ``doctor``. The hook sidecar makes no Kubernetes request (an import-linter contract keeps
Kubernetes clients out of it), so it has no ServiceAccount here.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from kubevirt_cca.adapters.cluster_state import ClusterState
from kubevirt_cca.adapters.kube import async_client
from kubevirt_cca.cli.doctor import diagnose, expected_from_args
from kubevirt_cca.core.install import (
    CERT_MANAGER,
    SELF_SIGNED,
    CertificateMode,
    InstallOptions,
    install_objects,
)
from kubevirt_cca.core.install.names import CERTS, DOCTOR, LABELLER, TLS_SECRET, WEBHOOK
from tests.doctor.cluster import load, make_ca, ready_cluster
from tests.install.test_certs import run_ensure, webhook_configurations
from tests.webhook.cluster import eventually

NAMESPACE = "kubevirt-cca"
CAPABLE_DOMCAPS = """<domainCapabilities><arch>aarch64</arch><features>
<cca supported='yes'><enum name='measurement-algo'><value>sha256</value></enum></cca>
</features></domainCapabilities>"""


@dataclass(frozen=True)
class Access:
    verb: str
    group: str
    resource: str
    namespace: str | None
    name: str | None

    def __str__(self) -> str:
        where = f" in {self.namespace}" if self.namespace else " (cluster-wide)"
        named = f" {self.name}" if self.name else ""
        return f"{self.verb} {self.group or 'core'}/{self.resource}{named}{where}"


def access_of(method: str, path: str, query: str) -> Access | None:
    """The RBAC attributes of one API request, as the API server's authorizer sees them."""
    parts = path.strip("/").split("/")
    if parts[0] == "api":
        group, rest = "", parts[2:]
    elif parts[0] == "apis" and len(parts) > 2:
        group, rest = parts[1], parts[3:]
    else:
        return None  # discovery
    namespace = None
    if len(rest) >= 2 and rest[0] == "namespaces" and len(rest) != 2:
        namespace, rest = rest[1], rest[2:]
    resource, name = rest[0], (rest[1] if len(rest) > 1 else None)
    params = parse_qs(query)
    if name is None:
        selected = [
            f.split("=", 1)[1]
            for f in params.get("fieldSelector", [""])[0].split(",")
            if f.startswith("metadata.name=")
        ]
        name = selected[0] if selected else None  # RBAC honours resourceNames for these
        if method == "GET":
            verb = "watch" if params.get("watch", [""])[0] in ("1", "true") else "list"
        else:
            verb = {"POST": "create", "DELETE": "deletecollection"}[method]
    else:
        verb = {"GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[method]
    if verb == "create":
        name = None  # create requests are not authorised by name
    return Access(verb, group, resource, namespace, name)


def recorded(api: Any) -> set[Access]:
    accesses = {access_of(r.method.value, r.url.path, r.url.query_string) for r in api}
    return {a for a in accesses if a is not None}


# apiGroups, resources, verbs, resourceNames
Rule = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]


@dataclass(frozen=True)
class Grant:
    namespace: str | None  # None: cluster-wide (a ClusterRole bound by a ClusterRoleBinding)
    role: str
    index: int
    rule: Rule

    def allows(self, access: Access) -> bool:
        groups, resources, verbs, names = self.rule
        return (
            (self.namespace is None or self.namespace == access.namespace)
            and access.group in groups
            and access.resource in resources
            and access.verb in verbs
            and (not names or access.name in names)
        )

    def triples(self) -> Iterable[tuple[str, str, str]]:
        groups, resources, verbs, _ = self.rule
        for group in groups:
            for resource in resources:
                for verb in verbs:
                    yield group, resource, verb


def _rule(rule: dict[str, Any]) -> Rule:
    return (
        tuple(rule["apiGroups"]),
        tuple(rule["resources"]),
        tuple(rule["verbs"]),
        tuple(rule.get("resourceNames", ())),
    )


def grants_of(service_account: str, objects: list[dict[str, Any]]) -> list[Grant]:
    """What the bindings of the install give a service account in the install namespace."""
    roles = {
        (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o
        for o in objects
        if o["kind"] in ("Role", "ClusterRole")
    }
    grants = []
    for binding in objects:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if {
            "kind": "ServiceAccount",
            "name": service_account,
            "namespace": NAMESPACE,
        } not in binding["subjects"]:
            continue
        namespace = binding["metadata"].get("namespace")
        ref = binding["roleRef"]
        role = roles[(ref["kind"], namespace if ref["kind"] == "Role" else None, ref["name"])]
        for index, rule in enumerate(role["rules"]):
            grants.append(Grant(namespace, f"{role['kind']} {ref['name']}", index, _rule(rule)))
    return grants


def doctor_grants(objects: list[dict[str, Any]]) -> list[Grant]:
    """The doctor roles are not bound by the install: as if bound to the person running it."""
    grants = []
    for obj in objects:
        if obj["kind"] in ("Role", "ClusterRole") and obj["metadata"]["name"] == DOCTOR:
            namespace = obj["metadata"].get("namespace")
            for index, rule in enumerate(obj["rules"]):
                grants.append(Grant(namespace, f"{obj['kind']} {DOCTOR}", index, _rule(rule)))
    return grants


def assert_least_privilege(grants: list[Grant], accesses: set[Access]) -> None:
    assert accesses, "the component made no request: nothing was measured"
    denied = sorted(str(a) for a in accesses if not any(g.allows(a) for g in grants))
    assert denied == [], f"the RBAC does not allow: {denied}"
    unused = sorted(
        f"{g.role} rule {g.index}: {verb} {group or 'core'}/{resource}"
        for g in grants
        for group, resource, verb in g.triples()
        if not any(
            a.group == group and a.resource == resource and a.verb == verb and g.allows(a)
            for a in accesses
        )
    )
    assert unused == [], f"granted but never used: {unused}"


# --- the components ---------------------------------------------------------------------------


async def run_labeller(api: Any, tmp_path: Path) -> None:
    from tests.labeller.conftest import make_host

    api.add_node("arm-1", labels={"kubernetes.io/arch": "arm64"}, annotations={})
    domcaps = tmp_path / "domcaps.xml"
    domcaps.write_text(CAPABLE_DOMCAPS)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import sys; from kubevirt_cca.cli import main; sys.exit(main())",
        "labeller",
        "--once",
        "--node-name",
        "arm-1",
        "--domcaps-file",
        str(domcaps),
        "--root",
        str(make_host(tmp_path / "host")),
        "--server",
        str(api.url),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        _, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()


async def run_cluster_state(api: Any) -> None:
    from tests.webhook.cluster import declare_resources

    declare_resources(api)
    client = async_client(server=str(api.url))
    state = ClusterState(
        client, namespace=NAMESPACE, kubevirt_namespace="kubevirt", retry_delay=0.1
    )
    try:
        await state.start()
        await eventually(lambda: state.ready)
        # A migration names a VMI the cache does not hold: fetched once.
        await state.lookup_vmi("default", "not-cached")
        async with asyncio.timeout(10):  # until every source is being watched
            while sum(1 for a in recorded(api) if a.verb == "watch") < 5:
                await asyncio.sleep(0.02)
    finally:
        await state.stop()
        await client.close()


@pytest.mark.asyncio
async def test_the_labeller_gets_exactly_what_it_uses(tmp_path: Path) -> None:
    import kmock

    from tests.labeller.emulator import ClusterAPI

    async with ClusterAPI() as api, kmock.Server(api):
        await run_labeller(api, tmp_path)
        accesses = recorded(api)
    assert {a.verb for a in accesses} >= {"get", "patch"}
    assert_least_privilege(grants_of(LABELLER, install_objects(InstallOptions())), accesses)


@pytest.mark.asyncio
async def test_the_webhook_gets_exactly_what_it_uses(kmock: Any) -> None:
    await run_cluster_state(kmock)
    objects = install_objects(InstallOptions(certificates=CERT_MANAGER))
    assert_least_privilege(grants_of(WEBHOOK, objects), recorded(kmock))


@pytest.mark.asyncio
async def test_self_signed_certificates_have_their_own_identity_with_exactly_what_it_uses(
    kmock: Any,
) -> None:
    """Issue 13: certificate creation is not the webhook. ``certs ensure`` (the Job and the
    CronJob) runs as kubevirt-cca-certs, with exactly what it uses."""
    load(kmock, webhook_configurations())
    kmock.resources["v1/secrets"] = {}
    await run_ensure(kmock, None)  # creates the Secret
    await run_ensure(kmock, None, now=datetime(2027, 11, 1, tzinfo=UTC))  # renews: patches it
    objects = install_objects(InstallOptions(certificates=SELF_SIGNED))
    assert_least_privilege(grants_of(CERTS, objects), recorded(kmock))
    jobs = [o for o in objects if o["kind"] in ("Job", "CronJob")]
    assert [o["kind"] for o in jobs] == ["Job", "CronJob"]
    for job in jobs:
        spec = job["spec"] if job["kind"] == "Job" else job["spec"]["jobTemplate"]["spec"]
        pod = spec["template"]["spec"]
        assert pod["serviceAccountName"] == CERTS
        assert [c["args"][:2] for c in pod["containers"]] == [["certs", "ensure"]]


@pytest.mark.asyncio
async def test_the_self_signed_webhook_gets_only_what_it_uses_at_run_time(kmock: Any) -> None:
    """The webhook itself may write nothing: no Secrets, no webhook configurations (a
    compromised webhook could otherwise re-point the pod-mutation rule at every pod)."""
    await run_cluster_state(kmock)
    objects = install_objects(InstallOptions(certificates=SELF_SIGNED))
    grants = grants_of(WEBHOOK, objects)
    assert_least_privilege(grants, recorded(kmock))
    assert grants_of(WEBHOOK, objects) == grants_of(
        WEBHOOK, install_objects(InstallOptions(certificates=CERT_MANAGER))
    )
    for verb in ("create", "patch", "update", "delete"):
        assert not any(g.allows(Access(verb, "", "secrets", NAMESPACE, TLS_SECRET)) for g in grants)
        assert not any(
            g.allows(
                Access(
                    verb,
                    "admissionregistration.k8s.io",
                    "mutatingwebhookconfigurations",
                    None,
                    "kubevirt-cca",
                )
            )
            for g in grants
        )
    deployment = next(
        o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == WEBHOOK
    )
    pod = deployment["spec"]["template"]["spec"]
    assert "initContainers" not in pod and pod["serviceAccountName"] == WEBHOOK


@pytest.mark.asyncio
async def test_doctor_gets_exactly_what_it_uses(kmock: Any) -> None:
    load(kmock, ready_cluster(make_ca()))
    expected = expected_from_args(
        argparse.Namespace(namespace=NAMESPACE, kubevirt_namespace="kubevirt")
    )
    await diagnose(server=str(kmock.url), kubeconfig=None, expected=expected)
    assert_least_privilege(doctor_grants(install_objects(InstallOptions())), recorded(kmock))


@pytest.mark.parametrize("mode", [CERT_MANAGER, SELF_SIGNED])
def test_doctor_may_read_no_secret(mode: CertificateMode) -> None:
    """Issue 21: the Secret holds tls.key and ca.key; doctor checks the certificate from its
    public half (core/doctor/certificate.py) and is granted no Secret at all."""
    grants = doctor_grants(install_objects(InstallOptions(certificates=mode)))
    for verb in ("get", "list", "watch"):
        for name in (TLS_SECRET, "kubevirt-cca-ca", None):
            assert not any(g.allows(Access(verb, "", "secrets", NAMESPACE, name)) for g in grants)


def test_the_authorizer_model_refuses_what_rbac_refuses() -> None:
    """The checker itself: names, namespaces and verbs are all part of a grant."""
    grants = grants_of(CERTS, install_objects(InstallOptions(certificates=SELF_SIGNED)))
    secret = "kubevirt-cca-webhook-tls"
    assert any(g.allows(Access("patch", "", "secrets", NAMESPACE, secret)) for g in grants)
    assert not any(g.allows(Access("patch", "", "secrets", NAMESPACE, "other")) for g in grants)
    assert not any(g.allows(Access("get", "", "secrets", "default", secret)) for g in grants)
    assert not any(g.allows(Access("delete", "", "secrets", NAMESPACE, secret)) for g in grants)
    assert access_of(
        "GET", "/api/v1/namespaces/x/configmaps", "fieldSelector=metadata.name%3Dc&watch=true"
    ) == Access("watch", "", "configmaps", "x", "c")
    assert access_of("POST", "/api/v1/namespaces/x/secrets", "") == Access(
        "create", "", "secrets", "x", None
    )
    assert access_of("GET", "/apis/kubevirt.io/v1/virtualmachineinstances", "") == Access(
        "list", "kubevirt.io", "virtualmachineinstances", None, None
    )
