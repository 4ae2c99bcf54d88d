"""The exceptions kubevirt-cca raises. All derive from one root::

    CCAError                     anything kubevirt-cca refuses or cannot do
    ├── RequestError             the CCA request on a VMI / template is invalid (carries violations)
    ├── SettingsError            a dialect, firmware path or policy setting is invalid
    ├── UsageError               a command-line flag's value is unusable (the command exits 2)
    ├── DomainError              a domain XML cannot be made into a Realm
    ├── CapabilitiesError        libvirt domain capabilities cannot be read
    ├── ManifestError            a manifest file cannot be read as one Kubernetes object
    │   └── InputTooLarge        a file or standard input is larger than the bound it is read to
    ├── KubernetesAPIError       a Kubernetes API request failed (``status``: HTTP status or None)
    │   ├── KubernetesNotFound   404: no such object (or no such resource on this cluster)
    │   ├── KubernetesForbidden  401 or 403: this identity may not make the request
    │   ├── KubernetesConflict   409: the object changed since it was read (read and decide again)
    │   ├── KubernetesFailedGuard  422 without causes: a JSON patch ``test`` guard failed
    │   ├── KubernetesInvalid    422 with field causes: the API server found the object invalid
    │   ├── KubernetesUnreachable  no answer at all (network, TLS, wrong server)
    │   └── KubeconfigError      no request made: the kubeconfig (or a file it names) is unusable
    ├── CertificateError         the webhook's TLS certificate or key cannot be loaded
    ├── AttestationError         an attestation token, trust anchor or nonce cannot be used
    │   ├── ReferenceValueError  a host profile or launch input for a reference RIM is unusable
    │   └── MeasurementLogError  a Realm measurement log (CCEL, TCG2 format) cannot be read
    ├── CollectionError          configfs-tsm cannot produce an attestation token here
    ├── HookError                the hook sidecar refuses to define a VMI's domain
    └── MalformedReview          a webhook body is not an AdmissionReview (HTTP 400)

Adapters translate library exceptions (lxml, grpc, Kubernetes clients) into these with
``raise ... from``; the Kubernetes client's exceptions are translated in one place,
:func:`kubevirt_cca.adapters.kube.call`. The commands turn them into one readable line and an
exit code. (``CertificateError`` lives in ``adapters/webhook/tls.py`` and ``MalformedReview`` in
``core/admission/reviews.py``, next to what raises them; both derive from :class:`CCAError`.)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Violation:
    """One problem with an object, at a field path written the way KubeVirt writes them."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class CCAError(Exception):
    """The root of every error kubevirt-cca raises on purpose."""


class RequestError(CCAError):
    """The CCA request is invalid; ``violations`` lists every problem found, not just the first."""

    def __init__(self, violations: tuple[Violation, ...] | list[Violation]) -> None:
        self.violations = tuple(violations)
        super().__init__("; ".join(str(v) for v in self.violations))


class SettingsError(CCAError):
    """A kubevirt-cca setting (dialect, firmware path, virtio IOMMU policy) is invalid."""


class UsageError(CCAError):
    """A command-line flag's value is unusable: the command says so and exits 2 (docs/cli.md).

    Raised by the commands where they turn flags into values (a :class:`SettingsError` from a
    flag becomes this), so that a setting read at run time (a socket, a ConfigMap) keeps its
    own exit status.
    """


class DomainError(CCAError):
    """The domain XML cannot be made into a Realm (not a domain, not aarch64, ...)."""


class CapabilitiesError(CCAError):
    """libvirt's domain capabilities could not be obtained or parsed."""


class ManifestError(CCAError):
    """A manifest file is not one readable Kubernetes object."""


class InputTooLarge(ManifestError):
    """A file, FIFO, device or standard input holds more than the bound it is read to."""


class KubernetesAPIError(CCAError):
    """A Kubernetes API request failed.

    ``status`` is the HTTP status (``None``: no usable answer, unreachable or unreadable);
    ``detail`` is the reason without the name of the request (the message prefixes it).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        detail: str | None = None,
        causes: tuple[str, ...] = (),
    ) -> None:
        self.status = status
        self.detail = message if detail is None else detail
        self.causes = causes
        """The Status's field causes (``field: message``); empty when it had none."""
        super().__init__(message)


class KubernetesNotFound(KubernetesAPIError):
    """HTTP 404: the object does not exist, or this cluster does not serve its resource."""


class KubernetesForbidden(KubernetesAPIError):
    """HTTP 401 or 403: the identity making the request may not make it."""


class KubernetesConflict(KubernetesAPIError):
    """HTTP 409: another writer changed the object since it was read; read and decide again."""


class KubernetesInvalid(KubernetesAPIError):
    """HTTP 422 with field causes: the object as written is invalid (not a changed object).

    A 422 *without* causes is what the API server answers when a JSON patch's ``test``
    operation fails: that is :class:`KubernetesFailedGuard`.
    """


class KubernetesFailedGuard(KubernetesAPIError):
    """HTTP 422 without field causes: what the API server answers when a JSON patch's ``test``
    operation fails, i.e. the object changed since it was read (read and decide again)."""


class KubernetesUnreachable(KubernetesAPIError):
    """The API server gave no answer at all (connection refused, TLS, timeout)."""


class KubeconfigError(KubernetesAPIError):
    """The kubeconfig, or a file it names, cannot be used: bad input, the commands exit 2."""


class AttestationError(CCAError):
    """A token, trust anchor, nonce or expected value is unusable (not a failed check)."""


class ReferenceValueError(AttestationError):
    """A host profile or launch input cannot give a reference RIM; lists every problem."""

    def __init__(self, violations: tuple[Violation, ...] | list[Violation]) -> None:
        self.violations = tuple(violations)
        super().__init__("; ".join(str(v) for v in self.violations))


class MeasurementLogError(AttestationError):
    """A Realm measurement log cannot be read (truncated, not TCG2, unknown algorithm)."""


class CollectionError(CCAError):
    """configfs-tsm cannot produce an attestation token (not mounted, not a Realm, refused)."""


class HookError(CCAError):
    """The hook sidecar refuses to define a domain; virt-launcher shows the message in events.

    ``vmi`` names the VMI (``namespace/name``); ``__cause__`` is the :class:`RequestError` or
    :class:`DomainError` behind the refusal, when there is one.
    """

    def __init__(self, message: str, *, vmi: str) -> None:
        self.vmi = vmi
        super().__init__(message)
