"""The webhook's serving certificate, checked without its Secret: doctor reads no private key.

Where the certificate's public half is, per source:

- **cert-manager** signs it through a CertificateRequest; the signed certificate is in the
  request's ``status.certificate``. The newest revision for the Certificate
  ``kubevirt-cca-webhook`` is the one in the Secret.
- **self-signed**: ``kubevirt-cca certs ensure`` writes ``tls.crt`` and ``ca.crt`` into the
  ConfigMap ``kubevirt-cca-webhook-certificate`` (the install creates it empty).

Either way the same checks follow: the dates, the Service's DNS name, and that every webhook's
``caBundle`` holds the CA that signed it.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509

from kubevirt_cca.core.certs import dns_names_of, issued_by
from kubevirt_cca.core.doctor.model import (
    Check,
    Expected,
    Read,
    Snapshot,
    Status,
    objects,
    unreadable,
)
from kubevirt_cca.core.doctor.webhooks import (
    CERT_MANAGER_FIX,
    cert_manager_missing,
    cert_manager_missing_line,
    configurations,
    uses_cert_manager,
)
from kubevirt_cca.core.install.names import (
    CERTIFICATE_CONFIG_MAP,
    CERTS,
    CERTS_RENEWAL,
    WEBHOOK_CERTIFICATE,
    service_dns_names,
)
from kubevirt_cca.core.wire.objects import dig

CERTIFICATE_WARNING = timedelta(days=14)
CERTIFICATE_NAME_ANNOTATION = "cert-manager.io/certificate-name"
REVISION_ANNOTATION = "cert-manager.io/certificate-revision"


def _revision(request: dict[str, Any]) -> int:
    value = dig(request, "metadata", "annotations", REVISION_ANNOTATION)
    return int(value) if isinstance(value, str) and value.isdigit() else -1


def _signed_request(read: Read) -> tuple[str, str] | str:
    """(where, base64 PEM) of the newest signed CertificateRequest for our Certificate, or why
    there is none."""
    ours = [
        r
        for r in read.items()
        if dig(r, "metadata", "annotations", CERTIFICATE_NAME_ANNOTATION) == WEBHOOK_CERTIFICATE
        and isinstance(dig(r, "status", "certificate"), str)
        and dig(r, "status", "certificate")
    ]
    if not ours:
        return (
            f"cert-manager has signed no certificate for Certificate {WEBHOOK_CERTIFICATE} yet "
            "(no CertificateRequest with status.certificate)"
        )
    newest = max(ours, key=_revision)
    return f"CertificateRequest {dig(newest, 'metadata', 'name')}", str(
        dig(newest, "status", "certificate")
    )


def _published(read: Read, namespace: str) -> tuple[str, bytes] | str:
    """(where, PEM) of what ``certs ensure`` wrote into the ConfigMap, or why there is none."""
    where = f"ConfigMap {namespace}/{CERTIFICATE_CONFIG_MAP}"
    if read.missing:
        return f"{where} is missing"
    pem = dig(read.value, "data", "tls.crt")
    if not isinstance(pem, str) or not pem:
        return f"{where} holds no tls.crt yet"
    return where, pem.encode("utf-8", "replace")


def _leaf(snapshot: Snapshot, namespace: str, *, cert_manager: bool) -> x509.Certificate | str:
    """The serving certificate from its public source, or why it cannot be had."""
    if cert_manager:
        found = _signed_request(snapshot.certificate_requests)
        if isinstance(found, str):
            return found
        where, encoded = found
        try:
            pem = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            return f"{where} holds no readable certificate ({exc})"
    else:
        published = _published(snapshot.certificate_config_map, namespace)
        if isinstance(published, str):
            return published
        where, pem = published
    try:
        return _pem_certificates(pem)[0]
    except (ValueError, IndexError) as exc:
        return f"{where} holds no readable certificate ({exc})"


def _pem_certificates(data: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(data)


def check_certificate(snapshot: Snapshot, expected: Expected) -> Check:
    name = "webhook certificate"
    namespace = expected.options.namespace
    cert_manager = uses_cert_manager(snapshot)
    read, what = (
        (snapshot.certificate_requests, f"cert-manager CertificateRequests in {namespace}")
        if cert_manager
        else (snapshot.certificate_config_map, f"ConfigMap {namespace}/{CERTIFICATE_CONFIG_MAP}")
    )
    if read.error:
        return unreadable(name, what, read)
    if cert_manager_missing(snapshot):
        return Check(
            name,
            Status.FAIL,
            cert_manager_missing_line("nothing issues the webhook's certificate"),
            fix=CERT_MANAGER_FIX,
        )
    if cert_manager:
        source = (
            "cert-manager has not issued it: "
            f"kubectl describe certificate {WEBHOOK_CERTIFICATE} -n {namespace}"
        )
    else:
        source = f"the certificate Job has not run: kubectl logs -n {namespace} job/{CERTS}"
    leaf = _leaf(snapshot, namespace, cert_manager=cert_manager)
    if isinstance(leaf, str):
        fix = source
        if not cert_manager:
            # An install from before the ConfigMap: the Job does not run again on re-apply.
            fix += (
                "; after an upgrade, run the renewal once: "
                f"kubectl create job -n {namespace} --from=cronjob/{CERTS_RENEWAL} {CERTS}-now"
            )
        return Check(name, Status.FAIL, leaf, fix=fix)
    problems: list[str] = []
    now = snapshot.now
    expires = leaf.not_valid_after_utc
    if leaf.not_valid_before_utc > now:
        problems.append(f"not valid before {_when(leaf.not_valid_before_utc)}")
    if expires <= now:
        problems.append(f"expired {_when(expires)}")
    names = dns_names_of(leaf)
    wanted = service_dns_names(expected.options)[2]
    if wanted not in names:
        problems.append(f"does not name {wanted} (names: {', '.join(names) or 'none'})")
    problems += _trust_problems(snapshot, leaf)
    if problems:
        return Check(
            name,
            Status.FAIL,
            "the API server will refuse the webhook's certificate",
            tuple(problems),
            fix=source,
        )
    left = expires - now
    summary = f"valid until {_when(expires)} ({left.days} days), trusted by both configurations"
    if left < CERTIFICATE_WARNING:
        renew = (
            "cert-manager renews it 30 days before expiry: check the Certificate"
            if cert_manager
            else f"the CronJob {CERTS_RENEWAL} renews it daily from 30 days before expiry; "
            "to renew now: "
            f"kubectl create job -n {namespace} --from=cronjob/{CERTS_RENEWAL} {CERTS}-now"
        )
        return Check(name, Status.WARN, summary, (f"expires in {left.days} days",), fix=renew)
    return Check(name, Status.OK, summary)


def _trust_problems(snapshot: Snapshot, leaf: x509.Certificate) -> list[str]:
    problems = []
    for kind, read, _ in configurations(snapshot):
        if read.value is None:
            continue
        for hook in objects(dig(read.value, "webhooks")):
            bundle = dig(hook, "clientConfig", "caBundle")
            if not bundle:
                continue  # reported by the configuration check
            try:
                if not isinstance(bundle, str):
                    raise ValueError("not a string")
                authorities = _pem_certificates(base64.b64decode(bundle, validate=True))
            except (binascii.Error, ValueError):
                problems.append(f"{kind} webhook {hook.get('name')}: caBundle is not PEM")
                continue
            if not any(issued_by(leaf, ca) for ca in authorities):
                problems.append(
                    f"{kind} webhook {hook.get('name')}: "
                    "caBundle does not hold the CA that signed the certificate (x509: "
                    "certificate signed by unknown authority)"
                )
    return problems


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")
