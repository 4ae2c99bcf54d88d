"""AdmissionReview ``admission.k8s.io/v1``: the wire types, reading a request, building a reply.

Two channels, as kopf has them: a body that is not an AdmissionReview is :class:`MalformedReview`
(the server answers HTTP 400, or a denial carrying the ``uid`` when one could be read); a
refused object is ``allowed: false`` with KubeVirt-style causes.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, NotRequired, TypedDict, cast

from kubevirt_cca.core.admission.patches import PatchOperation
from kubevirt_cca.core.wire.jsontext import NestedTooDeeply, NotJSONValue, UnreadableJSON, loads
from kubevirt_cca.errors import CCAError, Violation

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"
MAX_MESSAGE = 1024
MAX_STATUS_MESSAGE = 8192


class GroupVersionKind(TypedDict):
    group: str
    version: str
    kind: str


Operation = Literal["CREATE", "UPDATE", "DELETE", "CONNECT"]
OPERATIONS: tuple[Operation, ...] = ("CREATE", "UPDATE", "DELETE", "CONNECT")


class AdmissionRequest(TypedDict):
    uid: str
    kind: GroupVersionKind
    operation: Operation
    namespace: NotRequired[str]
    name: NotRequired[str]
    object: NotRequired[dict[str, Any] | None]
    oldObject: NotRequired[dict[str, Any] | None]
    dryRun: NotRequired[bool]


class StatusCause(TypedDict):
    type: str
    field: str
    message: str


class StatusDetails(TypedDict):
    causes: list[StatusCause]


class Status(TypedDict):
    code: int
    reason: str
    message: str
    details: NotRequired[StatusDetails]


class AdmissionResponse(TypedDict):
    uid: str
    allowed: bool
    status: NotRequired[Status]
    patchType: NotRequired[Literal["JSONPatch"]]
    patch: NotRequired[str]
    warnings: NotRequired[list[str]]


class AdmissionReview(TypedDict):
    apiVersion: str
    kind: str
    response: AdmissionResponse


class MalformedReview(CCAError):
    """The body is not a usable AdmissionReview; ``uid`` is set when one could be read."""

    def __init__(self, message: str, *, uid: str | None = None) -> None:
        self.uid = uid
        super().__init__(message)


def parse_review(body: bytes) -> AdmissionRequest:
    """The ``request`` of an AdmissionReview body, checked as far as admission relies on it."""
    try:
        review = loads(body)
    except NotJSONValue as exc:
        raise MalformedReview(
            f"the body holds a value JSON cannot carry: {exc.reason}; "
            f"expected an AdmissionReview {API_VERSION}"
        ) from None
    except NestedTooDeeply:
        raise MalformedReview(
            "the body is nested too deeply to read "
            "(more levels of JSON arrays and objects than Python's limit); "
            f"expected an AdmissionReview {API_VERSION}"
        ) from None
    except UnreadableJSON as exc:
        raise MalformedReview(
            f"the body is not JSON ({exc.reason}); expected an AdmissionReview {API_VERSION}"
        ) from None
    if not isinstance(review, dict):
        raise MalformedReview(f"expected an AdmissionReview {API_VERSION} object")
    request = review.get("request")
    uid = request.get("uid") if isinstance(request, dict) else None
    uid = uid if isinstance(uid, str) and uid else None
    if review.get("apiVersion") != API_VERSION or review.get("kind") != KIND:
        raise MalformedReview(
            f"expected apiVersion {API_VERSION} and kind {KIND}, "
            f"got {_short(review.get('apiVersion'))} and {_short(review.get('kind'))}",
            uid=uid,
        )
    if not isinstance(request, dict):
        raise MalformedReview("the AdmissionReview has no request object")
    if uid is None:
        raise MalformedReview("request.uid: expected a non-empty string")
    kind = request.get("kind")
    if not (
        isinstance(kind, dict)
        and all(isinstance(kind.get(k), str) for k in ("group", "version", "kind"))
    ):
        raise MalformedReview("request.kind: expected {group, version, kind}", uid=uid)
    operation = request.get("operation")
    if operation not in OPERATIONS:
        raise MalformedReview(
            f"request.operation: expected one of {', '.join(OPERATIONS)}, got {_short(operation)}",
            uid=uid,
        )
    for key in ("object", "oldObject"):
        if request.get(key) is not None and not isinstance(request[key], dict):
            raise MalformedReview(f"request.{key}: expected an object", uid=uid)
    if operation in ("CREATE", "UPDATE") and not isinstance(request.get("object"), dict):
        raise MalformedReview(f"request.object: required for {operation}", uid=uid)
    return cast(AdmissionRequest, request)


# json.dumps with separators builds a new encoder per call; one is enough (issue 16 item 8).
_COMPACT = json.JSONEncoder(separators=(",", ":"))


def allow(
    uid: str, *, patch: Sequence[PatchOperation] = (), warnings: Iterable[str] = ()
) -> AdmissionResponse:
    response: AdmissionResponse = {"uid": uid, "allowed": True}
    if patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(_COMPACT.encode(list(patch)).encode()).decode("ascii")
    shown = [w[:MAX_MESSAGE] for w in warnings]
    if shown:
        response["warnings"] = shown
    return response


def deny(
    uid: str, violations: Sequence[Violation], *, message: str | None = None, code: int = 422
) -> AdmissionResponse:
    """A refusal in KubeVirt's shape: reason Invalid, every cause with its field path."""
    causes: list[StatusCause] = [
        {"type": "FieldValueInvalid", "field": v.field, "message": v.message[:MAX_MESSAGE]}
        for v in violations
    ]
    if message is None:
        message = "; ".join(
            f"{c['field']}: {c['message']}" if c["field"] else c["message"] for c in causes
        )
    status: Status = {
        "code": code,
        "reason": "Invalid" if code == 422 else "BadRequest",
        "message": message[:MAX_STATUS_MESSAGE],
    }
    if causes:
        status["details"] = {"causes": causes}
    return {"uid": uid, "allowed": False, "status": status}


def build_review(response: AdmissionResponse) -> AdmissionReview:
    return {"apiVersion": API_VERSION, "kind": KIND, "response": response}


def object_of(request: AdmissionRequest) -> Mapping[str, Any]:
    value = request.get("object")
    return value if isinstance(value, dict) else {}


def old_object_of(request: AdmissionRequest) -> Mapping[str, Any] | None:
    value = request.get("oldObject")
    return value if isinstance(value, dict) else None


def _short(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
