"""``kubevirt-cca doctor`` against kmock's Kubernetes emulator over real HTTP.

A ready cluster passes; then, one at a time, each thing that can be missing or wrong, and what
doctor says about it.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from datetime import timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from kubevirt_cca.cli import main
from kubevirt_cca.cli.doctor import diagnose, expected_from_args
from kubevirt_cca.core.doctor import Check, Status
from tests.doctor.cluster import (
    CHECK_NAMES,
    drop,
    endpoint_slice,
    find,
    kubevirt,
    load,
    make_ca,
    make_serving,
    ready_cluster,
    set_serving,
)
from tests.doctor.scenarios import DETAILS, FAILURES, pin, replace, signed_by_another_ca, webhook
from tests.webhook.cluster import forbidden

CA = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]
Objects = list[dict[str, Any]]


@pytest.fixture(scope="session")
def ca() -> CA:
    return make_ca()


def _expected() -> Any:
    import argparse

    return expected_from_args(
        argparse.Namespace(namespace="kubevirt-cca", kubevirt_namespace="kubevirt")
    )


async def doctor(kmock: Any, objects: Objects) -> dict[str, Check]:
    load(kmock, objects)
    checks = await diagnose(server=str(kmock.url), kubeconfig=None, expected=_expected())
    return {check.name: check for check in checks}


def statuses(checks: dict[str, Check]) -> dict[str, Status]:
    return {name: check.status for name, check in checks.items()}


@pytest.mark.asyncio
async def test_a_ready_cluster_passes_every_check(kmock: Any, ca: CA) -> None:
    checks = await doctor(kmock, ready_cluster(ca))
    assert statuses(checks) == dict.fromkeys(checks, Status.OK), {
        n: (c.summary, c.details) for n, c in checks.items() if c.status is not Status.OK
    }
    assert checks["KubeVirt"].summary == "KubeVirt v1.8.0 (Deployed), KubeVirt CR kubevirt/kubevirt"
    assert checks["CCA-capable nodes"].summary == "1 of 2 arm64 node(s) can run Realms: arm-1"
    assert checks["CCA-capable nodes"].details == ("arm-2: libvirt reports cca supported='no'",)
    assert checks["node labeller"].summary == "running and ready on 2 of 2 arm64 node(s)"
    assert checks["webhook service"].summary == "2 ready webhook pods"
    assert checks["CCA parameters"].summary == (
        "dialect vep: honoured: measurementAlgo sha256 (libvirt): 1 node(s)"
    )
    assert checks["CCA parameters"].details[-1] == (
        "honoured by no node: measurementLog (libvirt) (label cca.kubevirt.io/measurement-log); "
        "a VM asking for it is admitted with a warning and stays Pending"
    )


@pytest.mark.asyncio
async def test_doctor_says_which_parameters_the_nodes_honour(kmock: Any, ca: CA) -> None:
    objects = ready_cluster(ca)
    for obj in objects:
        if obj["kind"] == "Node" and obj["metadata"]["labels"].get("kubevirt.io/cca") == "true":
            obj["metadata"]["labels"].update(
                {
                    "cca.kubevirt.io/measurement-algo-sha384": "true",
                    "cca.kubevirt.io/personalization-value": "true",
                }
            )
    checks = await doctor(kmock, objects)
    assert checks["CCA parameters"].status is Status.OK
    assert checks["CCA parameters"].summary == (
        "dialect vep: honoured: measurementAlgo sha256 (libvirt): 1 node(s); "
        "measurementAlgo sha384 (libvirt): 1 node(s); personalizationValue (libvirt): 1 node(s)"
    )
    assert [d.split(";")[0] for d in checks["CCA parameters"].details] == [
        "honoured by no node: measurementAlgo sha512 (libvirt) "
        "(label cca.kubevirt.io/measurement-algo-sha512)",
        "honoured by no node: measurementLog (libvirt) (label cca.kubevirt.io/measurement-log)",
    ]


@pytest.mark.asyncio
async def test_the_command_exits_0_when_ready_and_prints_json(kmock: Any, ca: CA) -> None:
    load(kmock, ready_cluster(ca))
    code, out, err = await asyncio.to_thread(
        _run_cli, "doctor", "--server", str(kmock.url), "--output", "json"
    )
    assert code == 0, err
    report = json.loads(out)
    assert report["schemaVersion"] == "kubevirt-cca.io/v1"
    assert (report["kind"], report["verdict"], report["ready"]) == ("DoctorReport", "pass", True)
    assert [(c["name"], c["status"]) for c in report["checks"]] == [
        (name, "pass") for name in CHECK_NAMES
    ]
    assert all(set(c) == {"name", "status", "message", "details"} for c in report["checks"])


@pytest.mark.asyncio
async def test_the_command_exits_1_and_says_what_to_do(kmock: Any, ca: CA) -> None:
    objects = ready_cluster(ca)
    objects[objects.index(find(objects, "KubeVirt"))] = kubevirt(["LiveMigration"])
    load(kmock, objects)
    code, out, _ = await asyncio.to_thread(_run_cli, "doctor", "--server", str(kmock.url))
    assert code == 1
    assert "[FAIL] feature gates: off: WorkloadEncryptionCCA, Sidecar" in out
    assert (
        'fix: kubectl patch kubevirt kubevirt -n kubevirt --type merge -p \'{"spec":'
        '{"configuration":{"developerConfiguration":{"featureGates":["LiveMigration",'
        '"WorkloadEncryptionCCA","Sidecar"]}}}}\''
    ) in out
    assert out.rstrip().endswith("NOT ready for Realms (1 failed, 0 warning(s))")


def _run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_an_unreachable_api_server_is_one_line_and_exit_1() -> None:
    code, out, err = _run_cli("doctor", "--server", "http://127.0.0.1:9")
    assert code == 1
    assert out == ""
    assert err.startswith("kubevirt-cca doctor: error: cannot reach the API server")
    assert "Traceback" not in err


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("case", "breaks", "check", "summary"), FAILURES, ids=[f[0] for f in FAILURES]
)
async def test_each_missing_thing_fails_its_check(
    kmock: Any, ca: CA, case: str, breaks: Callable[[Objects, CA], None], check: str, summary: str
) -> None:
    objects = ready_cluster(ca)
    breaks(objects, ca)
    checks = await doctor(kmock, objects)
    failed = {n for n, c in checks.items() if c.status is Status.FAIL}
    assert check in failed, checks[check]
    assert checks[check].summary.startswith(summary), checks[check].summary
    # Only the broken thing (and what depends on it) fails.
    dependants = {
        "KubeVirt": {"feature gates"},
        "webhook configurations": {"webhook certificate"},
        "node labeller": {"CCA-capable nodes"},
    }
    assert failed <= {check} | dependants.get(check, set()), failed


@pytest.mark.asyncio
@pytest.mark.parametrize("case", sorted(DETAILS))
async def test_the_details_name_the_problem(kmock: Any, ca: CA, case: str) -> None:
    _, breaks, check, _ = next(f for f in FAILURES if f[0] == case)
    objects = ready_cluster(ca)
    breaks(objects, ca)
    checks = await doctor(kmock, objects)
    assert DETAILS[case] in checks[check].details, checks[check].details


@pytest.mark.asyncio
async def test_a_certificate_from_another_ca_names_the_x509_error(kmock: Any, ca: CA) -> None:
    objects = ready_cluster(ca)
    signed_by_another_ca(objects, ca)
    check = (await doctor(kmock, objects))["webhook certificate"]
    assert any("x509: certificate signed by unknown authority" in d for d in check.details)
    webhooks = [
        h["name"]
        for o in ready_cluster(ca)
        if o["kind"].endswith("WebhookConfiguration")
        for h in o["webhooks"]
    ]
    assert len(check.details) == len(webhooks)  # one line per webhook the API server calls


@pytest.mark.asyncio
async def test_plugins_with_the_plugins_gate_warn_that_realms_will_not_start(
    kmock: Any, ca: CA
) -> None:
    objects = ready_cluster(ca)
    replace(objects, kubevirt(["WorkloadEncryptionCCA", "Sidecar", "Plugins"]))
    # The legacy sidecar mode kept on purpose (with integrationMode auto, the Plugins gate would
    # switch kubevirt-cca to plugin mode: see test_plugin_doctor.py): the mixed state.
    find(objects, "ConfigMap")["data"]["integrationMode"] = "sidecar"
    pin(objects, integrationMode="sidecar")  # rendered so (manifests --integration-mode sidecar)
    objects.append(
        {
            "apiVersion": "plugin.kubevirt.io/v1alpha1",
            "kind": "Plugin",
            "metadata": {"name": "network-passt"},
            "spec": {},
        }
    )
    checks = await doctor(kmock, objects)
    plugins = checks["KubeVirt plugins"]
    assert plugins.status is Status.WARN
    assert "drops <launchSecurity type='cca'>, so Realm VMs fail to start" in plugins.summary
    assert plugins.details == ("Plugin network-passt",)
    mode = checks["integration mode"]
    assert mode.status is Status.FAIL  # with dialect vep the mixed state refuses CCA VMIs
    assert mode.details[0].startswith("mixed state: KubeVirt's Plugins gate is on")
    assert {
        c.status for n, c in checks.items() if n not in ("KubeVirt plugins", "integration mode")
    } == {Status.OK}


@pytest.mark.asyncio
async def test_plugins_without_the_gate_are_harmless(kmock: Any, ca: CA) -> None:
    objects = ready_cluster(ca)
    objects.append(
        {
            "apiVersion": "plugin.kubevirt.io/v1alpha1",
            "kind": "Plugin",
            "metadata": {"name": "network-passt"},
            "spec": {},
        }
    )
    checks = await doctor(kmock, objects)
    assert checks["KubeVirt plugins"].status is Status.OK


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("case", "check", "detail"),
    [
        ("one webhook pod", "webhook service", None),
        ("expires soon", "webhook certificate", "expires in 5 days"),
        (
            "hook image differs",
            "configuration",
            "hookImage is old:1 but the webhook runs kubevirt-cca:0.1.0: new Realms get a hook "
            "sidecar of another version",
        ),
        (
            "tainted node",
            "node labeller",
            "arm-2: no labeller pod, the node is tainted dedicated:NoSchedule (add a toleration if "
            "Realms should run there)",
        ),
        (
            "other virt-launcher",
            "node labeller",
            "the labeller asks the libvirt of quay.io/kubevirt/virt-launcher:v1.8.0, but KubeVirt "
            "runs quay.io/kubevirt/virt-launcher:v1.9.1: what it reports may not be what starts "
            "VMs (install with 'kubevirt-cca manifests --virt-launcher-image "
            "quay.io/kubevirt/virt-launcher:v1.9.1')",
        ),
        ("KubeVirt deploying", "KubeVirt", "KubeVirt is not fully deployed yet; VMs may not start"),
        (
            "policies for another mode",
            "admission policies",
            "ValidatingAdmissionPolicy kubevirt-cca-vmi-needs-hook was rendered with "
            "integrationMode 'auto', kubevirt-cca-config says 'sidecar'",
        ),
        (
            "templates fail closed",
            "webhook configurations",
            "validate-templates.cca.kubevirt.io: failurePolicy is Fail, kubevirt-cca ships Ignore "
            "(docs/admin.md, 'Failure policies')",
        ),
    ],
)
async def test_warnings_leave_the_cluster_ready(
    kmock: Any, ca: CA, case: str, check: str, detail: str | None
) -> None:
    objects = ready_cluster(ca)
    if case == "one webhook pod":
        replace(objects, endpoint_slice(1))
    elif case == "expires soon":
        set_serving(objects, make_serving(ca, valid_for=timedelta(days=5, hours=12)))
    elif case == "hook image differs":
        # Rendered and applied with old:1 (ConfigMap and policies agree), the webhook newer.
        find(objects, "ConfigMap")["data"]["hookImage"] = "old:1"
        pin(objects, hookImage="old:1")
    elif case == "policies for another mode":
        find(objects, "ConfigMap")["data"]["integrationMode"] = "sidecar"
    elif case == "tainted node":
        drop(objects, "Pod", "kubevirt-cca-labeller-arm-2")
        find(objects, "Node", "arm-2")["spec"]["taints"] = [
            {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
        ]
    elif case == "KubeVirt deploying":
        cr = kubevirt()
        cr["status"]["phase"] = "Deploying"
        replace(objects, cr)
    elif case == "other virt-launcher":
        replace(objects, kubevirt(version="v1.9.1"))
    else:
        webhook(objects, "ValidatingWebhookConfiguration", "validate-templates.cca.kubevirt.io")[
            "failurePolicy"
        ] = "Fail"
    checks = await doctor(kmock, objects)
    assert checks[check].status is Status.WARN, checks[check]
    if detail is not None:
        assert detail in checks[check].details
    assert all(c.status is not Status.FAIL for c in checks.values())


@pytest.mark.asyncio
async def test_a_forbidden_read_fails_one_check_and_names_the_roles(kmock: Any, ca: CA) -> None:
    path = "/apis/cert-manager.io/v1/namespaces/kubevirt-cca/certificaterequests"
    kmock[f"get {path}"] << 403 << forbidden("certificaterequests.cert-manager.io is forbidden")
    checks = await doctor(kmock, ready_cluster(ca))
    check = checks["webhook certificate"]
    assert check.status is Status.FAIL
    assert check.summary == (
        "cannot read cert-manager CertificateRequests in kubevirt-cca: 403 "
        "Forbidden: certificaterequests.cert-manager.io is forbidden"
    )
    assert check.fix is not None and "kubevirt-cca-doctor" in check.fix
    assert [n for n, c in checks.items() if c.status is Status.FAIL] == ["webhook certificate"]


def self_signed(objects: Objects, serving: Any | None) -> None:
    """The self-signed install: no CA injection, no CertificateRequests, and the public
    certificate in the ConfigMap ``certs ensure`` writes (``serving``; none: not yet)."""
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        del find(objects, kind)["metadata"]["annotations"]
    drop(objects, "CertificateRequest", "kubevirt-cca-webhook-2")
    drop(objects, "CertificateRequest", "kubevirt-cca-webhook-1")
    data = {"tls.crt": pem_text(serving), "ca.crt": ""} if serving is not None else None
    objects.append(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "kubevirt-cca-webhook-certificate", "namespace": "kubevirt-cca"},
            **({"data": data} if data else {}),
        }
    )


def pem_text(cert: Any) -> str:
    from cryptography.hazmat.primitives import serialization

    return str(cert.public_bytes(serialization.Encoding.PEM).decode())


@pytest.mark.asyncio
async def test_self_signed_the_certificate_comes_from_the_public_config_map(
    kmock: Any, ca: CA
) -> None:
    objects = ready_cluster(ca)
    self_signed(objects, make_serving(ca))
    check = (await doctor(kmock, objects))["webhook certificate"]
    assert check.status is Status.OK, check
    assert check.summary.endswith("trusted by both configurations")
    assert not [r for r in kmock if "/secrets" in r.url.path]


@pytest.mark.asyncio
async def test_self_signed_an_expired_published_certificate_fails(kmock: Any, ca: CA) -> None:
    objects = ready_cluster(ca)
    self_signed(objects, make_serving(ca, valid_for=-timedelta(hours=1)))
    check = (await doctor(kmock, objects))["webhook certificate"]
    assert check.status is Status.FAIL
    assert any(d.startswith("expired ") for d in check.details), check


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("config_map", "summary"),
    [
        ("empty", "ConfigMap kubevirt-cca/kubevirt-cca-webhook-certificate holds no tls.crt yet"),
        ("missing", "ConfigMap kubevirt-cca/kubevirt-cca-webhook-certificate is missing"),
    ],
)
async def test_the_advice_for_a_missing_certificate_fits_the_install(
    kmock: Any, ca: CA, config_map: str, summary: str
) -> None:
    """The self-signed install has no CA-injection annotation: doctor points at its
    certificate Job instead of at cert-manager."""
    objects = ready_cluster(ca)
    self_signed(objects, None)
    if config_map == "missing":
        drop(objects, "ConfigMap", "kubevirt-cca-webhook-certificate")
    check = (await doctor(kmock, objects))["webhook certificate"]
    assert check.status is Status.FAIL
    assert check.summary == summary
    assert check.fix == (
        "the certificate Job has not run: kubectl logs -n kubevirt-cca job/kubevirt-cca-certs; "
        "after an upgrade, run the renewal once: kubectl create job -n kubevirt-cca "
        "--from=cronjob/kubevirt-cca-certs-renewal kubevirt-cca-certs-now"
    )


@pytest.mark.asyncio
async def test_with_cert_manager_the_advice_names_the_certificate(kmock: Any, ca: CA) -> None:
    objects = ready_cluster(ca)
    drop(objects, "CertificateRequest", "kubevirt-cca-webhook-2")
    drop(objects, "CertificateRequest", "kubevirt-cca-webhook-1")
    check = (await doctor(kmock, objects))["webhook certificate"]
    assert check.fix == (
        "cert-manager has not issued it: kubectl describe certificate "
        "kubevirt-cca-webhook -n kubevirt-cca"
    )


@pytest.mark.asyncio
async def test_the_newest_certificate_request_is_the_one_checked(kmock: Any, ca: CA) -> None:
    """ready_cluster's revision 1 is signed by another CA: only revision 2 counts, whatever
    the order of the list."""
    objects = ready_cluster(ca)
    first = find(objects, "CertificateRequest", "kubevirt-cca-webhook-2")
    objects.remove(first)
    objects.append(first)
    assert (await doctor(kmock, objects))["webhook certificate"].status is Status.OK


@pytest.mark.asyncio
async def test_an_older_certificate_request_alone_is_checked_as_it_is(kmock: Any, ca: CA) -> None:
    """The control: revision 1 alone (signed by a CA the caBundle does not hold) fails."""
    objects = ready_cluster(ca)
    drop(objects, "CertificateRequest", "kubevirt-cca-webhook-2")
    check = (await doctor(kmock, objects))["webhook certificate"]
    assert check.status is Status.FAIL
    assert any("does not hold the CA that signed the certificate" in d for d in check.details)


@pytest.mark.asyncio
async def test_labels_the_detection_does_not_support_are_problems(kmock: Any, ca: CA) -> None:
    from tests.doctor.cluster import node

    amd64 = node("x86-1", arch="amd64")  # labelled by someone else on an amd64 node
    denied = node("arm-3", capable=False, reasons=["no /dev/kvm"])
    denied["metadata"]["labels"]["kubevirt.io/cca"] = "true"
    unreported = node("arm-4")
    del unreported["metadata"]["annotations"]["cca.kubevirt.io/detection"]
    checks = await doctor(kmock, [*ready_cluster(ca), amd64, denied, unreported])
    nodes = checks["CCA-capable nodes"]
    assert nodes.status is Status.FAIL
    assert nodes.summary == (
        "1 of 4 arm64 node(s) can run Realms: arm-1; 3 node(s) carry a kubevirt.io/cca=true "
        "label their detection does not support: arm-3, arm-4, x86-1"
    )
    assert nodes.details[:3] == (
        "x86-1: labelled kubevirt.io/cca=true but it is amd64 (kubernetes.io/arch): Realms "
        "need an arm64 host",
        "arm-3: labelled kubevirt.io/cca=true but its own detection report says not capable "
        "(no /dev/kvm)",
        "arm-4: labelled kubevirt.io/cca=true but its detection report is missing: not checked "
        "yet (no cca.kubevirt.io/detection annotation)",
    )
