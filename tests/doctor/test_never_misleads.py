"""doctor never misleads (issue 23, item 6): on a cluster without kubevirt-cca, one line that
says so; with the cert-manager install on a cluster without cert-manager, cert-manager named
with the alternative, not a line per webhook that says "re-apply the install"."""

from __future__ import annotations

import asyncio
import io
import json
from contextlib import redirect_stderr, redirect_stdout
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from kubevirt_cca.cli import main
from tests.doctor.cluster import drop, load, make_ca
from tests.doctor.scenarios import nothing_installed, without_cert_manager

CA = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]
INSTALL = (
    "install it as docs/install.md says: kubevirt-cca manifests --image YOUR-IMAGE "
    "--virt-launcher-image YOUR-LAUNCHER | kubectl apply -f - (without cert-manager add "
    "--certificates self-signed); installed in another namespace: kubevirt-cca doctor "
    "--namespace NAME"
)
CERT_MANAGER_FIX = (
    "install cert-manager (docs/install.md, 'What you need first'), or install without it: "
    "kubevirt-cca manifests --certificates self-signed --image YOUR-IMAGE --virt-launcher-image "
    "YOUR-LAUNCHER | kubectl apply -f - (docs/install.md, 'Without cert-manager')"
)


@pytest.fixture(scope="module")
def ca() -> CA:
    return make_ca()


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


async def doctor_json(kmock: Any, objects: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    load(kmock, objects)
    code, out, err = await asyncio.to_thread(
        run_cli, "doctor", "--server", str(kmock.url), "--output", "json"
    )
    assert err == ""
    report: dict[str, Any] = json.loads(out)
    return code, report


@pytest.mark.asyncio
async def test_nothing_installed_is_one_line(kmock: Any, ca: CA) -> None:
    load(kmock, nothing_installed(ca))
    code, out, err = await asyncio.to_thread(run_cli, "doctor", "--server", str(kmock.url))
    assert code == 1, err
    assert out == (
        "[FAIL] kubevirt-cca: kubevirt-cca is not installed: no webhook configuration "
        "kubevirt-cca, none of its admission policies, and none of its objects in namespace "
        f"kubevirt-cca\n       fix: {INSTALL}\n"
        "NOT ready for Realms (1 failed, 0 warning(s))\n"
    )


@pytest.mark.asyncio
async def test_nothing_installed_and_no_kubevirt_says_kubevirt_first(kmock: Any, ca: CA) -> None:
    objects = nothing_installed(ca)
    drop(objects, "KubeVirt")
    code, report = await doctor_json(kmock, objects)
    assert code == 1
    assert report["ready"] is False
    [check] = report["checks"]
    assert check["name"] == "kubevirt-cca"
    assert check["fix"] == (
        f"install KubeVirt first (its operator and a KubeVirt CR), then {INSTALL}"
    )


@pytest.mark.asyncio
async def test_one_install_object_left_is_not_nothing(kmock: Any, ca: CA) -> None:
    """The control: the admission policies alone (re-applied after an uninstall, as admin.md
    suggests) are something installed: every check runs, each saying what is missing."""
    from kubevirt_cca.adapters.install_files import load_policies
    from kubevirt_cca.core.install import InstallOptions, install_objects

    policies = [
        o
        for o in install_objects(InstallOptions(), load_policies())
        if o["kind"].startswith("ValidatingAdmissionPolicy")
        and o["metadata"]["name"] == "kubevirt-cca-vmi-needs-hook"
    ]
    code, report = await doctor_json(kmock, [*nothing_installed(ca), *policies])
    assert code == 1
    names = [c["name"] for c in report["checks"]]
    assert "kubevirt-cca" not in names
    assert "admission policies" in names and len(names) == 12


@pytest.mark.asyncio
async def test_a_forbidden_read_is_never_called_not_installed(kmock: Any, ca: CA) -> None:
    """What doctor could not read may be there: no "not installed" on a 403."""
    from tests.webhook.cluster import forbidden

    path = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/kubevirt-cca"
    kmock[f"get {path}"] << 403 << forbidden("mutatingwebhookconfigurations is forbidden")
    code, report = await doctor_json(kmock, nothing_installed(ca))
    assert code == 1
    assert report["checks"][0]["name"] == "KubeVirt"
    hooks = next(c for c in report["checks"] if c["name"] == "webhook configurations")
    assert hooks["message"].startswith("cannot read MutatingWebhookConfiguration kubevirt-cca")


@pytest.mark.asyncio
async def test_cert_manager_missing_is_named_once_per_check_with_the_alternative(
    kmock: Any, ca: CA
) -> None:
    code, report = await doctor_json(kmock, without_cert_manager(ca))
    assert code == 1
    checks = {c["name"]: c for c in report["checks"]}
    hooks = checks["webhook configurations"]
    assert hooks["status"] == "fail"
    assert hooks["details"] == [
        "cert-manager is not installed (the API server serves no cert-manager.io/v1 "
        "CertificateRequests), but this install relies on it: its CA injector fills caBundle, "
        "which is empty in 7 webhook(s), so the API server cannot trust the webhook"
    ]
    assert hooks["fix"] == CERT_MANAGER_FIX
    certificate = checks["webhook certificate"]
    assert certificate["message"] == (
        "cert-manager is not installed (the API server serves no cert-manager.io/v1 "
        "CertificateRequests), but this install relies on it: nothing issues the webhook's "
        "certificate"
    )
    assert certificate["fix"] == CERT_MANAGER_FIX
    service = checks["webhook service"]
    assert service["details"] == [
        "cert-manager is not installed (the API server serves no cert-manager.io/v1 "
        "CertificateRequests), but this install relies on it: the pods wait for Secret "
        "kubevirt-cca-webhook-tls, which it would issue"
    ]
    assert service["fix"] == CERT_MANAGER_FIX
    # No line anywhere tells the admin to re-apply: that would change nothing.
    assert "re-apply" not in json.dumps(report)
    failed = {n for n, c in checks.items() if c["status"] == "fail"}
    assert failed == {"webhook configurations", "webhook service", "webhook certificate"}


@pytest.mark.asyncio
async def test_cert_manager_installed_but_not_issued_is_not_called_missing(
    kmock: Any, ca: CA
) -> None:
    """The control: cert-manager's kind is served (its CRD is there), no request signed yet."""
    objects = without_cert_manager(ca)
    from tests.doctor.cluster import CERTIFICATE_REQUEST_CRD

    _, report = await doctor_json(kmock, [*objects, CERTIFICATE_REQUEST_CRD])
    checks = {c["name"]: c for c in report["checks"]}
    assert "cert-manager is not installed" not in json.dumps(report)
    assert checks["webhook certificate"]["message"].startswith(
        "cert-manager has signed no certificate"
    )
    assert len(checks["webhook configurations"]["details"]) == 7  # one empty caBundle each
