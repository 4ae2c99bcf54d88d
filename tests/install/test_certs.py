"""The self-signed certificate path: ``kubevirt-cca certs ensure`` against kmock over HTTP,
the plan it follows, a real TLS handshake with what it writes, and doctor's verdict on it."""

from __future__ import annotations

import argparse
import asyncio
import base64
import copy
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from kubevirt_cca.adapters.cert_store import ensure
from kubevirt_cca.adapters.kube import async_client
from kubevirt_cca.cli.certs import dns_names
from kubevirt_cca.cli.doctor import diagnose, expected_from_args
from kubevirt_cca.core.certs import CA_CRT, TLS_CRT, TLS_KEY, Action, plan
from kubevirt_cca.core.doctor import Status
from kubevirt_cca.core.install import SELF_SIGNED, InstallOptions, install_objects
from tests.doctor.cluster import load

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
NAMES = dns_names("kubevirt-cca-webhook", "kubevirt-cca")
SECRETS = "v1/secrets"
SECRET_KEY = (SECRETS, "kubevirt-cca", "kubevirt-cca-webhook-tls")


def certs(data: dict[str, bytes], key: str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(data[key])


def test_a_first_plan_makes_a_ca_and_a_serving_certificate_it_signs() -> None:
    first = plan(None, now=NOW, dns_names=NAMES)
    assert first.action is Action.NEW_CA
    serving = certs(dict(first.material.data), TLS_CRT)[0]
    (ca,) = certs(dict(first.material.data), CA_CRT)
    serving.verify_directly_issued_by(ca)
    san = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == NAMES
    assert serving.not_valid_after_utc == NOW + timedelta(days=365)
    assert ca.not_valid_after_utc == NOW + timedelta(days=3650)


def test_a_valid_secret_is_kept_byte_for_byte() -> None:
    first = plan(None, now=NOW, dns_names=NAMES)
    again = plan(dict(first.material.data), now=NOW + timedelta(days=300), dns_names=NAMES)
    assert again.action is Action.KEEP
    assert again.material.data == first.material.data


def test_renewal_keeps_the_ca_so_the_ca_bundle_does_not_change() -> None:
    first = plan(None, now=NOW, dns_names=NAMES)
    later = NOW + timedelta(days=340)
    renewed = plan(dict(first.material.data), now=later, dns_names=NAMES)
    assert renewed.action is Action.NEW_SERVING
    assert renewed.reason == "the certificate expires 2027-11-27"
    assert renewed.material.ca_bundle == first.material.ca_bundle
    assert certs(dict(renewed.material.data), TLS_CRT)[0].not_valid_after_utc == later + timedelta(
        days=365
    )


def test_a_new_ca_keeps_the_old_one_trusted_until_it_expires() -> None:
    first = plan(None, now=NOW, dns_names=NAMES)
    later = NOW + timedelta(days=3650 - 200)
    replaced = plan(dict(first.material.data), now=later, dns_names=NAMES)
    assert replaced.action is Action.NEW_CA
    bundle = certs(dict(replaced.material.data), CA_CRT)
    old_ca = certs(dict(first.material.data), CA_CRT)[0]
    assert len(bundle) == 2
    assert bundle[1] == old_ca
    certs(dict(replaced.material.data), TLS_CRT)[0].verify_directly_issued_by(bundle[0])


@pytest.mark.parametrize("damage", ["missing key", "garbage", "other names", "foreign key"])
def test_an_unusable_secret_is_replaced(damage: str) -> None:
    data = dict(plan(None, now=NOW, dns_names=NAMES).material.data)
    if damage == "missing key":
        del data[TLS_KEY]
        expected = Action.NEW_CA
    elif damage == "garbage":
        data[TLS_CRT] = b"not a certificate"
        expected = Action.NEW_CA
    elif damage == "other names":
        expected = Action.NEW_SERVING
        data = dict(plan(None, now=NOW, dns_names=["old.example"]).material.data)
    else:
        data[TLS_KEY] = plan(None, now=NOW, dns_names=NAMES).material.data[TLS_KEY]
        expected = Action.NEW_CA
    assert plan(data, now=NOW, dns_names=NAMES).action is expected


def self_signed_install() -> list[dict[str, Any]]:
    return copy.deepcopy(install_objects(InstallOptions(certificates=SELF_SIGNED)))


def webhook_configurations() -> list[dict[str, Any]]:
    """What ``certs ensure`` finds at install: both webhook configurations, and the empty
    ConfigMap for the public certificate."""
    return [
        o
        for o in self_signed_install()
        if o["kind"].endswith("WebhookConfiguration")
        or o["metadata"]["name"] == "kubevirt-cca-webhook-certificate"
    ]


async def run_ensure(kmock: Any, write_dir: Path | None, *, now: datetime = NOW) -> Any:
    client = async_client(server=str(kmock.url))
    try:
        return await ensure(
            client,
            namespace="kubevirt-cca",
            secret="kubevirt-cca-webhook-tls",
            webhook_configuration="kubevirt-cca",
            dns_names=NAMES,
            now=now,
            write_dir=write_dir,
            config_map="kubevirt-cca-webhook-certificate",
        )
    finally:
        await client.close()


def _writes(kmock: Any) -> list[str]:
    return [
        f"{r.method.value} {r.url.path}"
        for r in kmock
        if r.method.value in ("POST", "PUT", "PATCH", "DELETE")
    ]


@pytest.mark.asyncio
async def test_ensure_creates_the_secret_sets_both_ca_bundles_and_writes_files(
    kmock: Any, tmp_path: Path
) -> None:
    load(kmock, webhook_configurations())
    kmock.resources[SECRETS] = {}
    outcome = await run_ensure(kmock, tmp_path)
    assert outcome.plan.action is Action.NEW_CA
    secret = kmock.objects[SECRET_KEY]
    assert secret["type"] == "kubernetes.io/tls"
    stored = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    bundle = base64.b64encode(stored[CA_CRT]).decode()
    for kind in ("mutatingwebhookconfigurations", "validatingwebhookconfigurations"):
        config = kmock.objects[f"admissionregistration.k8s.io/v1/{kind}", None, "kubevirt-cca"]
        assert [h["clientConfig"]["caBundle"] for h in config["webhooks"]] == [bundle] * len(
            config["webhooks"]
        )
    assert (tmp_path / "tls.crt").read_bytes() == stored[TLS_CRT]
    assert (tmp_path / "tls.key").read_bytes() == stored[TLS_KEY]
    assert (tmp_path / "tls.key").stat().st_mode & 0o077 == 0
    assert _writes(kmock) == [
        "POST /api/v1/namespaces/kubevirt-cca/secrets",
        "PATCH /apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/kubevirt-cca",
        "PATCH /apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/kubevirt-cca",
        "PATCH /api/v1/namespaces/kubevirt-cca/configmaps/kubevirt-cca-webhook-certificate",
    ]
    # The public half only: doctor reads this ConfigMap, and no Secret.
    published = kmock.objects["v1/configmaps", "kubevirt-cca", "kubevirt-cca-webhook-certificate"]
    assert published["data"] == {
        "tls.crt": stored[TLS_CRT].decode(),
        "ca.crt": stored[CA_CRT].decode(),
    }
    assert outcome.published == "ConfigMap kubevirt-cca/kubevirt-cca-webhook-certificate"


@pytest.mark.asyncio
async def test_a_second_run_writes_nothing(kmock: Any, tmp_path: Path) -> None:
    load(kmock, webhook_configurations())
    kmock.resources[SECRETS] = {}
    await run_ensure(kmock, None)
    before = len(_writes(kmock))
    outcome = await run_ensure(kmock, tmp_path, now=NOW + timedelta(days=10))
    assert outcome.plan.action is Action.KEEP
    assert outcome.patched == ()
    assert len(_writes(kmock)) == before


@pytest.mark.asyncio
async def test_replicas_racing_end_with_one_certificate(kmock: Any, tmp_path: Path) -> None:
    load(kmock, webhook_configurations())
    kmock.resources[SECRETS] = {}
    await asyncio.gather(run_ensure(kmock, tmp_path / "a"), run_ensure(kmock, tmp_path / "b"))
    assert (tmp_path / "a" / "tls.crt").read_bytes() == (tmp_path / "b" / "tls.crt").read_bytes()
    stored = base64.b64decode(kmock.objects[SECRET_KEY]["data"][TLS_CRT])
    assert (tmp_path / "a" / "tls.crt").read_bytes() == stored


@pytest.mark.asyncio
async def test_missing_webhook_configurations_fail_with_a_clear_message(kmock: Any) -> None:
    kmock.resources[SECRETS] = {}
    kmock.resources["admissionregistration.k8s.io/v1/mutatingwebhookconfigurations"] = {}
    from kubevirt_cca.errors import KubernetesAPIError

    with pytest.raises(
        KubernetesAPIError, match="MutatingWebhookConfiguration kubevirt-cca does not exist yet"
    ):
        await run_ensure(kmock, None)


@pytest.mark.asyncio
async def test_the_written_certificate_serves_tls_for_the_service_name(
    kmock: Any, tmp_path: Path
) -> None:
    """What the API server does: verify against caBundle, for <service>.<namespace>.svc."""
    load(kmock, webhook_configurations())
    kmock.resources[SECRETS] = {}
    await run_ensure(kmock, tmp_path, now=datetime.now(UTC))
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    config = kmock.objects[
        "admissionregistration.k8s.io/v1/validatingwebhookconfigurations", None, "kubevirt-cca"
    ]
    bundle = base64.b64decode(config["webhooks"][0]["clientConfig"]["caBundle"]).decode()
    client_context = ssl.create_default_context(cadata=bundle)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"ok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_context)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1",
            port,
            ssl=client_context,
            server_hostname="kubevirt-cca-webhook.kubevirt-cca.svc",
        )
        assert await reader.read() == b"ok"
        writer.close()
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.open_connection(
                "127.0.0.1", port, ssl=client_context, server_hostname="elsewhere.example"
            )
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.asyncio
async def test_doctor_accepts_what_certs_ensure_made(kmock: Any) -> None:
    load(kmock, webhook_configurations())
    kmock.resources[SECRETS] = {}
    await run_ensure(kmock, None, now=datetime.now(UTC))
    expected = expected_from_args(
        argparse.Namespace(namespace="kubevirt-cca", kubevirt_namespace="kubevirt")
    )
    checks = {
        c.name: c for c in await diagnose(server=str(kmock.url), kubeconfig=None, expected=expected)
    }
    assert checks["webhook certificate"].status is Status.OK, checks["webhook certificate"]
    assert checks["webhook certificate"].summary.endswith("trusted by both configurations")


@pytest.mark.asyncio
async def test_a_garbled_secret_is_replaced(kmock: Any) -> None:
    load(kmock, webhook_configurations())
    kmock.objects[SECRET_KEY] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": SECRET_KEY[2], "namespace": SECRET_KEY[1]},
        "data": {"tls.crt": "%%% not base64 %%%", "tls.key": ""},
    }
    outcome = await run_ensure(kmock, None)
    assert outcome.plan.action is Action.NEW_CA
    assert outcome.plan.reason == "the Secret's certificate is unreadable"
    stored = base64.b64decode(kmock.objects[SECRET_KEY]["data"][TLS_CRT])
    assert stored.startswith(b"-----BEGIN CERTIFICATE-----")


@pytest.mark.asyncio
async def test_the_command_prints_what_it_did_and_exits_0(kmock: Any, tmp_path: Path) -> None:
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from kubevirt_cca.cli import main

    load(kmock, webhook_configurations())
    kmock.resources[SECRETS] = {}

    def command() -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = main(
                ["certs", "ensure", "--server", str(kmock.url), "--write-dir", str(tmp_path)]
            )
        return code, out.getvalue(), err.getvalue()

    code, out, err = await asyncio.to_thread(command)
    assert code == 0, err
    written = x509.load_pem_x509_certificate((tmp_path / "tls.crt").read_bytes())
    until = written.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert out.splitlines() == [
        f"certificate kubevirt-cca/kubevirt-cca-webhook-tls: new CA issued, valid until {until} "
        "(no certificate yet), caBundle set on MutatingWebhookConfiguration kubevirt-cca, "
        "ValidatingWebhookConfiguration kubevirt-cca, public certificate written to "
        "ConfigMap kubevirt-cca/kubevirt-cca-webhook-certificate"
    ]
    code, out, err = await asyncio.to_thread(command)
    assert code == 0, err
    assert out.splitlines() == [
        f"certificate kubevirt-cca/kubevirt-cca-webhook-tls: unchanged, valid until {until} (valid)"
    ]


def test_the_command_against_no_api_server_is_one_line_and_exit_1() -> None:
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from kubevirt_cca.cli import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["certs", "ensure", "--server", "http://127.0.0.1:9"])
    assert code == 1
    assert err.getvalue().startswith(
        "kubevirt-cca certs: error: get Secret kubevirt-cca/"
        "kubevirt-cca-webhook-tls: the API server could not be "
        "reached"
    )
    assert "Traceback" not in err.getvalue()


@pytest.mark.asyncio
async def test_write_dir_follows_no_symlink(kmock: Any, tmp_path: Path) -> None:
    """A link planted at the old temporary name or at the target never receives the key."""
    load(kmock, webhook_configurations())
    kmock.resources[SECRETS] = {}
    folder = tmp_path / "tls"
    folder.mkdir()
    elsewhere = tmp_path / "stolen"
    elsewhere.write_text("")
    elsewhere.chmod(0o644)
    (folder / ".tls.key.tmp").symlink_to(elsewhere)
    (folder / "tls.key").symlink_to(elsewhere)
    (folder / "ca.crt").symlink_to(tmp_path / "dangling")
    await run_ensure(kmock, folder)
    assert elsewhere.read_text() == ""  # nothing was written through a link
    assert oct(elsewhere.stat().st_mode & 0o777) == "0o644"
    assert not (tmp_path / "dangling").exists()
    key = folder / "tls.key"
    assert not key.is_symlink()
    assert key.stat().st_mode & 0o777 == 0o600
    assert b"PRIVATE KEY" in key.read_bytes()
    assert not (folder / "ca.crt").is_symlink()
    # No temporary file is left behind (the planted link is the only other entry).
    assert sorted(p.name for p in folder.iterdir()) == [
        ".tls.key.tmp",
        "ca.crt",
        "tls.crt",
        "tls.key",
    ]
