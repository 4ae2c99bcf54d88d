"""A server TLS context whose certificate follows the files on disk.

Kubernetes rotates a Secret mounted as files by swapping a symlink, so the certificate and key
change together. Every TLS handshake checks (one ``stat`` per file) whether they changed, and
if so loads them into a fresh context that this and later handshakes use: rotation needs no
restart. A pair that does not load (half written, key not matching) is logged once, naming the
file at fault, and the previous one stays in use until the files change to a good pair.

``not_after`` is the end of validity of the certificate in use (Unix time), for the metric
``kubevirt_cca_webhook_certificate_not_after_timestamp_seconds`` an alert watches
(docs/monitoring.md): it follows each reload, so a renewal that never happens shows.
"""

from __future__ import annotations

import logging
import ssl
import threading
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from kubevirt_cca.errors import CCAError

logger = logging.getLogger(__name__)

_Stamp = tuple[int, int, int, int]
# TLS 1.2 cipher suites: ECDHE key exchange with AEAD encryption (AES-GCM, ChaCha20-Poly1305)
# only, no CBC and no static RSA. TLS 1.3's suites are all AEAD and set apart by OpenSSL.
TLS12_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
)


class CertificateError(CCAError):
    """The webhook's certificate or key cannot be loaded."""


class ReloadingTLS:
    """Owns the server context handed to the HTTPS server, and reloads the pair on change."""

    def __init__(self, cert_file: str, key_file: str) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self._lock = threading.Lock()
        self._stamp = self._stamps()
        self._current, self.not_after = self._load()
        # The last pair on disk that failed, and the last problem logged: each is logged once,
        # not on every handshake until it is fixed.
        self._failed: tuple[_Stamp, _Stamp] | None = None
        self._logged: str | None = None
        self.context = self._load()[0]
        self.context.sni_callback = self._on_hello

    def _on_hello(
        self,
        ssl_object: ssl.SSLObject | ssl.SSLSocket,
        server_name: str | None,
        context: ssl.SSLContext,
    ) -> int | None:
        self.check()
        ssl_object.context = self._current
        return None

    def check(self) -> bool:
        """Reload when the files changed; ``True`` when a new pair is now in use."""
        try:
            stamp = self._stamps()
        except CertificateError as exc:
            self._warn_once(
                f"tls certificate check failed problem={str(exc)!r}; keeping the loaded pair"
            )
            return False
        if stamp == self._stamp or stamp == self._failed:
            return False
        with self._lock:
            if stamp == self._stamp or stamp == self._failed:
                return False
            try:
                context, not_after = self._load()
            except CertificateError as exc:
                self._failed = stamp
                self._warn_once(
                    f"tls reload failed problem={str(exc)!r}; "
                    "keeping the loaded pair until the files change again"
                )
                return False
            self._current, self._stamp, self._failed, self._logged = context, stamp, None, None
            self.not_after = not_after
        logger.info("tls certificate reloaded cert=%s key=%s", self.cert_file, self.key_file)
        return True

    def _warn_once(self, line: str) -> None:
        if line != self._logged:
            self._logged = line
            logger.warning("%s", line)

    def _stamps(self) -> tuple[_Stamp, _Stamp]:
        return _stamp(self.cert_file), _stamp(self.key_file)

    def _load(self) -> tuple[ssl.SSLContext, float]:
        """A context serving the pair on disk, and the end of its certificate's validity."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_ciphers(TLS12_CIPHERS)  # TLS 1.2: AEAD suites only; 1.3 has no others
        try:
            context.load_cert_chain(self.cert_file, self.key_file)
            # The first certificate of the file is the one served (the rest is its chain).
            leaf = x509.load_pem_x509_certificate(Path(self.cert_file).read_bytes())
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise CertificateError(_which_file(self.cert_file, self.key_file, exc)) from exc
        return context, leaf.not_valid_after_utc.timestamp()


def _which_file(cert_file: str, key_file: str, exc: OSError | ssl.SSLError | ValueError) -> str:
    """Name the file at fault: ssl's own error says neither which file nor why."""
    for path, kind, load in (
        (cert_file, "certificate", _load_certificate),
        (key_file, "private key", _load_key),
    ):
        try:
            data = Path(path).read_bytes()
        except OSError as read_error:
            return f"cannot read the {kind} file {path}: {read_error.strerror or read_error}"
        problem = load(data)
        if problem is not None:
            return f"the {kind} file {path} is not a PEM {kind} ({problem})"
    return (
        f"the private key in {key_file} does not belong to the certificate in {cert_file} "
        f"({getattr(exc, 'reason', None) or exc})"
    )


def _load_certificate(data: bytes) -> str | None:
    try:
        x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        return str(exc) or "unreadable"
    return None


def _load_key(data: bytes) -> str | None:
    try:
        serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        return str(exc) or "unreadable"
    return None


def _stamp(path: str) -> _Stamp:
    try:
        st = Path(path).stat()
    except OSError as exc:
        raise CertificateError(f"{path}: {exc.strerror or exc}") from exc
    return st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev
