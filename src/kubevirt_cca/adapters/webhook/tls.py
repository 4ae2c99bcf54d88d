"""A server TLS context whose certificate follows the files on disk.

Kubernetes rotates a Secret mounted as files by swapping a symlink, so the certificate and key
change together. Every TLS handshake checks (one ``stat`` per file) whether they changed, and
if so loads them into a fresh context that this and later handshakes use: rotation needs no
restart. A pair that does not load (half written, key not matching) is logged and the previous
one stays in use until the next handshake finds a good pair.
"""

from __future__ import annotations

import logging
import ssl
import threading
from pathlib import Path

from kubevirt_cca.errors import CCAError

logger = logging.getLogger(__name__)

_Stamp = tuple[int, int, int, int]


class CertificateError(CCAError):
    """The webhook's certificate or key cannot be loaded."""


class ReloadingTLS:
    """Owns the server context handed to the HTTPS server, and reloads the pair on change."""

    def __init__(self, cert_file: str, key_file: str) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self._lock = threading.Lock()
        self._stamp = self._stamps()
        self._current = self._load()
        self.reloads = 0
        self.context = self._load()
        self.context.sni_callback = self._on_hello

    def _on_hello(self, ssl_object: ssl.SSLObject | ssl.SSLSocket, server_name: str | None,
                  context: ssl.SSLContext) -> int | None:
        self.check()
        ssl_object.context = self._current
        return None

    def check(self) -> bool:
        """Reload when the files changed; ``True`` when a new pair is now in use."""
        try:
            stamp = self._stamps()
        except CertificateError as exc:
            logger.warning("tls certificate check failed problem=%r; keeping the loaded pair",
                           str(exc))
            return False
        if stamp == self._stamp:
            return False
        with self._lock:
            if stamp == self._stamp:
                return False
            try:
                context = self._load()
            except CertificateError as exc:
                logger.warning("tls reload failed problem=%r; keeping the loaded pair",
                               str(exc))
                return False
            self._current, self._stamp = context, stamp
            self.reloads += 1
        logger.info("tls certificate reloaded cert=%s key=%s", self.cert_file, self.key_file)
        return True

    def _stamps(self) -> tuple[_Stamp, _Stamp]:
        return _stamp(self.cert_file), _stamp(self.key_file)

    def _load(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise CertificateError(
                f"cannot load the certificate {self.cert_file} with key {self.key_file}: "
                f"{getattr(exc, 'strerror', None) or exc}") from exc
        return context


def _stamp(path: str) -> _Stamp:
    try:
        st = Path(path).stat()
    except OSError as exc:
        raise CertificateError(f"{path}: {exc.strerror or exc}") from exc
    return st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev
