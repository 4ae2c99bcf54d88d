"""The values ``doctor`` works on: what was read, what was expected, what was found."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from kubevirt_cca.core.install.names import InstallOptions
from kubevirt_cca.core.wire import report_envelope as envelope


@dataclass(frozen=True)
class Read:
    """One read from the API server: the object (or list of items), ``None`` when it does not
    exist, or ``error`` saying why it could not be read (forbidden, ...), with the HTTP
    ``status`` when the API server answered one."""

    value: Any = None
    error: str | None = None
    status: int | None = None

    @property
    def missing(self) -> bool:
        return self.error is None and self.value is None

    def items(self) -> list[dict[str, Any]]:
        """The objects of a list read (empty when absent or unreadable; non-objects skipped)."""
        values = self.value if isinstance(self.value, list) else []
        return [item for item in values if isinstance(item, dict)]


@dataclass(frozen=True, kw_only=True)
class Snapshot:
    """What doctor read from the cluster, at ``now``."""

    now: datetime
    kubevirts: Read
    plugins: Read
    config_map: Read
    mutating: Read
    validating: Read
    service: Read
    endpoint_slices: Read
    certificate_config_map: Read  # self-signed: the public certificate `certs ensure` writes
    # cert-manager: CertificateRequests (signed certificates); missing: the kind is not served
    certificate_requests: Read
    deployment: Read
    daemon_set: Read
    pods: Read
    nodes: Read
    vmi_crd: Read = field(default_factory=Read)  # KubeVirt's VMI CRD (does KubeVirt know CCA?)
    policies: Mapping[tuple[str, str], Read] = field(default_factory=dict)  # (kind, name)


@dataclass(frozen=True, kw_only=True)
class Expected:
    """What the install put there: names, and the install options it was made with."""

    options: InstallOptions
    policies: tuple[tuple[str, str], ...] = ()  # (kind, name) of every VAP and binding
    # ... and those only the self-signed install has (the certificate identity's).
    self_signed_policies: tuple[tuple[str, str], ...] = ()


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


# doctor's words on the report envelope's one status vocabulary (core/wire/report_envelope.py).
ENVELOPE_STATUS: dict[Status, envelope.Status] = {
    Status.OK: "pass",
    Status.WARN: "warn",
    Status.FAIL: "fail",
}


@dataclass(frozen=True)
class Check:
    """One answer: ``summary`` in a line, ``details`` one fact a line, ``fix`` what to do."""

    name: str
    status: Status
    summary: str
    details: tuple[str, ...] = ()
    fix: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The check as an entry of the report envelope's ``checks[]``."""
        return envelope.check(
            self.name,
            ENVELOPE_STATUS[self.status],
            self.summary,
            details=self.details,
            fix=self.fix,
        )


def is_ready(checks: list[Check]) -> bool:
    """Ready when nothing failed (warnings are worth reading but do not block Realms)."""
    return all(check.status is not Status.FAIL for check in checks)


def mapping(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty one (the API server's JSON is input)."""
    return value if isinstance(value, dict) else {}


def objects(value: Any) -> list[dict[str, Any]]:
    """The JSON objects of ``value`` when it is a list, skipping anything else."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def strings(value: Any) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def unreadable(name: str, what: str, read: Read) -> Check:
    error = read.error or ""
    if read.status in (401, 403):
        fix = (
            "run doctor as a cluster admin, "
            "or bind the kubevirt-cca-doctor ClusterRole and Role to your user (docs/admin.md, "
            "'Who may run doctor')"
        )
    else:
        fix = "the API server's answer could not be used; retry, and if it stays, report it"
    return Check(name, Status.FAIL, f"cannot read {what}: {error}", fix=fix)
