"""One domain definition over gRPC, the same for the hook sidecar and the Plugins server.

The decision is the core's; this runs it, writes the one log line per call (``outcome=
rewritten | unchanged | refused | error``) and turns a refusal into the call's gRPC status. Both
servers fail closed the same way: anything unforeseen aborts with INTERNAL, so virt-launcher
defines no domain rather than a plain one.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence

import grpc

from kubevirt_cca.core.hook import UNKNOWN_VMI, DefinedDomain
from kubevirt_cca.errors import DomainError, HookError, RequestError, SettingsError

logger = logging.getLogger(__name__)

# What kind of refusal maps to which gRPC status (virt-launcher shows code and message).
_STATUS_BY_CAUSE: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (RequestError, grpc.StatusCode.INVALID_ARGUMENT),
    (DomainError, grpc.StatusCode.FAILED_PRECONDITION),
    (SettingsError, grpc.StatusCode.FAILED_PRECONDITION),
)


def status_for(error: HookError) -> grpc.StatusCode:
    """The gRPC status for a refusal: the VMI's fault, the domain's or the settings'."""
    cause = error.__cause__
    for kind, code in _STATUS_BY_CAUSE:
        if isinstance(cause, kind):
            return code
    return grpc.StatusCode.INVALID_ARGUMENT  # the VMI JSON itself could not be read


def define(
    context: grpc.ServicerContext,
    decide: Callable[[], DefinedDomain],
    *,
    fields: Sequence[tuple[str, object]],
    dialect: str,
    internal_error: str,
) -> DefinedDomain:
    """``decide()``, logged as one line; a refusal or a failure aborts the call.

    ``fields`` name the call (``call=...`` first) and stand before ``vmi=`` in the line;
    ``internal_error`` is the message virt-launcher gets when something unforeseen failed.
    """
    started = time.perf_counter()
    lead = " ".join(f"{key}={value}" for key, value in fields)
    try:
        defined = decide()
    except HookError as exc:
        code = status_for(exc)
        logger.warning(
            "%s vmi=%s dialect=%s outcome=refused code=%s duration_ms=%.2f message=%s",
            lead,
            exc.vmi,
            dialect,
            code.name,
            _ms_since(started),
            json.dumps(str(exc)),
        )
        context.abort(code, str(exc))
    except Exception:
        logger.exception(
            "%s vmi=%s dialect=%s outcome=error code=INTERNAL duration_ms=%.2f",
            lead,
            UNKNOWN_VMI,
            dialect,
            _ms_since(started),
        )
        context.abort(grpc.StatusCode.INTERNAL, internal_error)
    logger.info(
        "%s vmi=%s dialect=%s outcome=%s duration_ms=%.2f",
        lead,
        defined.vmi,
        dialect,
        "rewritten" if defined.realm else "unchanged",
        _ms_since(started),
    )
    return defined


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
