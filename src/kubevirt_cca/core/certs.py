"""The webhook's certificate without cert-manager: a self-signed CA and a serving certificate.

Pure: :func:`plan` looks at what the Secret holds now and decides what it should hold. The CA
lives ten years and signs a one-year serving certificate for the Service's DNS names; the
serving certificate is reissued 30 days before it expires (or when it does not fit), signed by
the same CA, so the ``caBundle`` stays the same and running webhook pods stay trusted. A CA
within a year of its end is replaced; the bundle then carries the new CA first and the old one
after it until the old one expires, so pods still serving the old certificate stay trusted
until they restart. ``adapters/cert_store.py`` reads and writes the Secret and the webhook
configurations; ``kubevirt-cca certs ensure`` wires them.

Secret layout (type ``kubernetes.io/tls``, as cert-manager writes it, plus the CA key):
``tls.crt``, ``tls.key``, ``ca.crt`` (the trust bundle, current CA first), ``ca.key``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_VALIDITY = timedelta(days=3650)
CA_RENEW_BEFORE = timedelta(days=365)
SERVING_VALIDITY = timedelta(days=365)
SERVING_RENEW_BEFORE = timedelta(days=30)
BACKDATE = timedelta(minutes=5)  # tolerate clock skew between nodes and the API server

TLS_CRT, TLS_KEY, CA_CRT, CA_KEY = "tls.crt", "tls.key", "ca.crt", "ca.key"
SECRET_KEYS = (TLS_CRT, TLS_KEY, CA_CRT, CA_KEY)


class Action(StrEnum):
    KEEP = "keep"
    NEW_SERVING = "new-serving-certificate"
    NEW_CA = "new-ca"


@dataclass(frozen=True)
class Material:
    """What the Secret holds, as PEM bytes by Secret key."""

    data: Mapping[str, bytes]

    @property
    def ca_bundle(self) -> bytes:
        return self.data[CA_CRT]

    @property
    def valid_until(self) -> datetime:
        """When the serving certificate expires."""
        return x509.load_pem_x509_certificate(self.data[TLS_CRT]).not_valid_after_utc


@dataclass(frozen=True)
class Plan:
    action: Action
    material: Material
    reason: str


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


KeyedCertificate = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]


def new_ca(*, now: datetime, common_name: str) -> KeyedCertificate:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def new_serving(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    *,
    now: datetime,
    dns_names: Sequence[str],
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(dns_names[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(min(now + SERVING_VALIDITY, ca_cert.not_valid_after_utc))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


@dataclass(frozen=True)
class _Current:
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]
    older_cas: tuple[x509.Certificate, ...]
    serving: x509.Certificate


def _read(data: Mapping[str, bytes]) -> _Current | None:
    """What the Secret holds, or ``None`` when it is incomplete or unreadable."""
    if any(key not in data for key in SECRET_KEYS):
        return None
    try:
        cas = x509.load_pem_x509_certificates(data[CA_CRT])
        ca_key = serialization.load_pem_private_key(data[CA_KEY], password=None)
        serving = x509.load_pem_x509_certificate(data[TLS_CRT])
        serving_key = serialization.load_pem_private_key(data[TLS_KEY], password=None)
    except ValueError:
        return None
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey) or not isinstance(
        serving_key, ec.EllipticCurvePrivateKey
    ):
        return None
    if (
        cas[0].public_key() != ca_key.public_key()
        or serving.public_key() != serving_key.public_key()
    ):
        return None
    return _Current(ca=(cas[0], ca_key), older_cas=tuple(cas[1:]), serving=serving)


def issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    """Whether ``ca`` signed ``cert`` (doctor asks the same of the certificate it finds)."""
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def dns_names_of(cert: x509.Certificate) -> list[str]:
    """The DNS names in a certificate's subject alternative names."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return list(san.value.get_values_for_type(x509.DNSName))


def _material(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    serving: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    bundle: Sequence[x509.Certificate],
) -> Material:
    return Material(
        {
            TLS_CRT: _pem(serving[0]),
            TLS_KEY: _key_pem(serving[1]),
            CA_CRT: b"".join(_pem(c) for c in bundle),
            CA_KEY: _key_pem(ca[1]),
        }
    )


def plan(
    data: Mapping[str, bytes] | None,
    *,
    now: datetime,
    dns_names: Sequence[str],
    ca_name: str = "kubevirt-cca webhook CA",
) -> Plan:
    """What the Secret should hold at ``now``, and why (see the module docstring)."""
    current = _read(data) if data is not None else None
    if current is None:
        ca = new_ca(now=now, common_name=ca_name)
        why = "no certificate yet" if not data else "the Secret's certificate is unreadable"
        return Plan(
            Action.NEW_CA,
            _material(ca, new_serving(ca, now=now, dns_names=dns_names), [ca[0]]),
            why,
        )
    if current.ca[0].not_valid_after_utc - now < CA_RENEW_BEFORE:
        ca = new_ca(now=now, common_name=ca_name)
        still_valid = [
            c for c in (current.ca[0], *current.older_cas) if c.not_valid_after_utc > now
        ]
        return Plan(
            Action.NEW_CA,
            _material(ca, new_serving(ca, now=now, dns_names=dns_names), [ca[0], *still_valid]),
            f"the CA expires {current.ca[0].not_valid_after_utc:%Y-%m-%d}",
        )
    serving = current.serving
    reason = None
    if serving.not_valid_after_utc - now < SERVING_RENEW_BEFORE:
        reason = f"the certificate expires {serving.not_valid_after_utc:%Y-%m-%d}"
    elif serving.not_valid_before_utc > now:
        reason = "the certificate is not valid yet"
    elif set(dns_names_of(serving)) != set(dns_names):
        reason = "the certificate names other DNS names"
    elif not issued_by(serving, current.ca[0]):
        reason = "the certificate is not signed by the CA"
    live = [c for c in (current.ca[0], *current.older_cas) if c.not_valid_after_utc > now]
    if reason is None:
        return Plan(Action.KEEP, Material(dict(data or {})), "valid")
    return Plan(
        Action.NEW_SERVING,
        _material(current.ca, new_serving(current.ca, now=now, dns_names=dns_names), live),
        reason,
    )
