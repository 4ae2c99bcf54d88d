"""Whatever the body, the webhook answers with a 400 or a well-formed AdmissionReview carrying
the request's uid; never a 500 or a traceback. Property-based over bodies and the CCA
annotation."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubevirt_cca.adapters.webhook.server import MAX_BODY_BYTES
from kubevirt_cca.constants import LAUNCH_SECURITY_ANNOTATION
from kubevirt_cca.core.vmi.webhook_table import WEBHOOKS
from tests.admission.helpers import labelled, review
from tests.webhook.conftest import Webhook

# Every endpoint the webhook serves, from the one table install and dispatch read.
ENDPOINTS = [hook.path for hook in WEBHOOKS]
# ... and every kind one of them admits (the others get a denial naming the kind).
KINDS = sorted({kind for hook in WEBHOOKS for kind in hook.kinds})
VMI = {
    "apiVersion": "kubevirt.io/v1",
    "kind": "VirtualMachineInstance",
    "metadata": {"name": "fuzz", "namespace": "default"},
    "spec": {"domain": {"devices": {}, "resources": {}}},
}
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def assert_bad_request(status: int, answer: Any, words: str) -> None:
    assert status == 400
    assert answer["kind"] == "Status" and answer["code"] == 400
    assert words in answer["message"]
    assert "Traceback" not in json.dumps(answer)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_not_json(webhook: Webhook, endpoint: str) -> None:
    assert_bad_request(*webhook.post(endpoint, b"{not json"), "not JSON")


def test_not_an_admission_review(webhook: Webhook) -> None:
    assert_bad_request(*webhook.post("/validate-vmi", b"[1, 2]"), "expected an AdmissionReview")
    assert_bad_request(
        *webhook.post("/validate-vmi", {"apiVersion": "v1", "kind": "Pod"}), "admission.k8s.io/v1"
    )
    no_uid = review(VMI)
    del no_uid["request"]["uid"]
    assert_bad_request(*webhook.post("/validate-vmi", no_uid), "request.uid")


def test_known_uid_gets_a_denial_not_a_400(webhook: Webhook) -> None:
    body = review(VMI, uid="uid-1")
    body["apiVersion"] = "admission.k8s.io/v1beta1"
    status, answer = webhook.post("/mutate-vmi", body)
    assert status == 200
    assert answer["response"]["uid"] == "uid-1" and answer["response"]["allowed"] is False
    assert "admission.k8s.io/v1" in answer["response"]["status"]["message"]
    body = review(VMI, uid="uid-2")
    body["request"]["object"] = "a string"
    status, answer = webhook.post("/validate-vmi", body)
    assert (status, answer["response"]["uid"], answer["response"]["allowed"]) == (
        200,
        "uid-2",
        False,
    )


def test_huge_body(webhook: Webhook) -> None:
    body = review(VMI)
    body["request"]["object"]["metadata"]["annotations"] = {"x": "y" * (MAX_BODY_BYTES + 1)}
    assert_bad_request(*webhook.post("/validate-vmi", body), "larger than")


def test_plain_http_on_the_tls_port_gets_no_admission(webhook: Webhook) -> None:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", webhook.https_port, timeout=10)

    def plain_request() -> None:
        conn.request("POST", "/validate-vmi", body=json.dumps(review(VMI)))
        conn.getresponse().read()

    try:
        with pytest.raises((ConnectionError, http.client.HTTPException)):
            plain_request()
    finally:
        conn.close()


@FUZZ
@given(body=st.binary(max_size=2048))
def test_fuzz_raw_bodies(webhook: Webhook, body: bytes) -> None:
    status, answer = webhook.post("/validate-vmi", body)
    assert status in (200, 400)
    if status == 200:  # only when the bytes happen to be a review with a uid
        assert isinstance(answer["response"]["uid"], str)
        assert "internal error" not in json.dumps(answer)


# JSON values: no NaN or infinities (not JSON; a body with one is a 400, tested below).
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


@FUZZ
@given(
    endpoint=st.sampled_from(ENDPOINTS),
    uid=st.text(min_size=1, max_size=40),
    request=st.dictionaries(
        st.sampled_from(
            ["kind", "operation", "object", "oldObject", "namespace", "name", "dryRun"]
        ),
        JSON,
        max_size=7,
    ),
    operation=st.sampled_from(["CREATE", "UPDATE", "DELETE", "CONNECT", "PATCH"]),
)
def test_fuzz_review_requests(
    webhook: Webhook, endpoint: str, uid: str, request: dict[str, Any], operation: str
) -> None:
    body = review(labelled(VMI), uid=uid, operation=operation)
    body["request"].update(request)
    status, answer = webhook.post(endpoint, body)
    assert status == 200, answer.get("message")
    assert answer["kind"] == "AdmissionReview"
    assert answer["response"]["uid"] == uid
    assert isinstance(answer["response"]["allowed"], bool)
    assert "internal error" not in json.dumps(answer), "the core raised on this input"


@FUZZ
@given(
    annotation=st.one_of(
        st.text(max_size=200),
        JSON.map(json.dumps),
        st.fixed_dictionaries(
            {},
            optional={
                "measurementAlgo": st.sampled_from(["sha256", "sha512", "sha1", ""]) | JSON,
                "measurementLog": st.sampled_from([True, False, "yes", "no", "on"]) | JSON,
                "personalizationValue": st.binary(min_size=60, max_size=68).map(
                    lambda b: __import__("base64").b64encode(b).decode()
                )
                | JSON,
            },
        ).map(json.dumps),
    )
)
def test_fuzz_cca_annotation(webhook: Webhook, annotation: str) -> None:
    body = review(labelled(VMI, annotation))
    status, answer = webhook.post("/mutate-vmi", body)
    assert status == 200
    response = answer["response"]
    assert response["uid"] == body["request"]["uid"]
    assert "internal error" not in json.dumps(answer), "the core raised on this input"
    if not response["allowed"]:
        fields = [c["field"] for c in response["status"]["details"]["causes"]]
        assert all(
            f.startswith(f"metadata.annotations[{LAUNCH_SECURITY_ANNOTATION}]") for f in fields
        ), fields
    else:
        assert response["patchType"] == "JSONPatch"


@FUZZ
@given(
    endpoint=st.sampled_from(ENDPOINTS),
    spec=st.dictionaries(
        st.sampled_from(
            [
                "domain",
                "nodeSelector",
                "architecture",
                "evictionStrategy",
                "template",
                "virtualMachineTemplate",
                "vmiName",
            ]
        ),
        JSON,
        max_size=5,
    ),
    annotations=st.dictionaries(
        st.sampled_from(
            [
                LAUNCH_SECURITY_ANNOTATION,
                "hooks.kubevirt.io/hookSidecars",
                "cca.kubevirt.io/resolved",
            ]
        ),
        JSON | st.text(max_size=30),
        max_size=3,
    ),
    kind=st.sampled_from(KINDS),
    operation=st.sampled_from(["CREATE", "UPDATE"]),
)
def test_fuzz_labelled_objects(
    webhook: Webhook,
    endpoint: str,
    spec: dict[str, Any],
    annotations: dict[str, Any],
    kind: str,
    operation: str,
) -> None:
    obj = {
        "apiVersion": "kubevirt.io/v1",
        "kind": kind,
        "metadata": {
            "name": "f",
            "namespace": "default",
            "labels": {"cca.kubevirt.io/enabled": "true"},
            "annotations": annotations,
        },
        "spec": spec,
    }
    body = review(obj, operation=operation, old=obj if operation == "UPDATE" else None)
    body["request"]["kind"]["kind"] = kind
    status, answer = webhook.post(endpoint, body)
    assert status == 200
    assert answer["response"]["uid"] == body["request"]["uid"]
    assert "internal error" not in json.dumps(answer), "the core raised on this input"


@pytest.mark.parametrize("operation", ["PATCH", "create", 7, None])
def test_an_operation_kubernetes_does_not_send_is_a_malformed_review(
    webhook: Webhook, operation: Any
) -> None:
    body = review(labelled(VMI), operation="CREATE")
    body["request"]["operation"] = operation
    status, answer = webhook.post("/validate-vmi", body)
    assert status == 200  # the uid was readable: a denial carrying it
    response = answer["response"]
    assert response["allowed"] is False
    assert (
        "request.operation: expected one of CREATE, UPDATE, DELETE, CONNECT"
        in (response["status"]["message"])
    )


def test_a_body_nested_too_deeply_says_so(webhook: Webhook) -> None:
    """Issue 13: it used to say "not UTF-8 JSON"."""
    body = b'{"request": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert_bad_request(*webhook.post("/validate-vmi", body), "nested too deeply")


def test_a_body_that_is_not_utf8_says_so(webhook: Webhook) -> None:
    assert_bad_request(*webhook.post("/validate-vmi", b'{"a": "\xff"}'), "not UTF-8")


def test_request_values_cannot_forge_log_lines(
    webhook: Webhook, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 13: names, namespaces and uids from a request are escaped in the log line."""
    forged = "x\nadmission endpoint=mutate-vmi uid=forged verdict=allowed"
    vmi = labelled(VMI)
    vmi["metadata"] = {**vmi["metadata"], "name": forged, "namespace": "ns\r\nfake=1"}
    body = review(vmi)
    body["request"]["name"] = forged
    body["request"]["namespace"] = "ns\r\nfake=1"
    body["request"]["uid"] = "u\nverdict=allowed"
    caplog.set_level("INFO", logger="kubevirt_cca.adapters.webhook.server")
    status, _ = webhook.post("/mutate-vmi", body)
    assert status == 200
    lines = [
        r.getMessage()
        for r in caplog.records
        if r.getMessage().startswith("admission ")
        and "endpoint=mutate-vmi" in r.getMessage()
        and "forged" in r.getMessage()
    ]
    assert len(lines) == 1
    line = lines[0]
    assert "\n" not in line and "\r" not in line
    assert 'name="x\\nadmission endpoint=mutate-vmi uid=forged verdict=allowed"' in line
    assert 'namespace="ns\\r\\nfake=1"' in line and 'uid="u\\nverdict=allowed"' in line


# --- issue 21 item 7: numbers JSON cannot carry ---------------------------------------------------

LONG = b"9" * 5000  # Python converts at most 4,300 digits between int and str


def _with_spec_member(value: bytes) -> bytes:
    """A review of a labelled VMI whose spec gets a member ``n`` with the raw JSON ``value``."""
    body = json.dumps(review(labelled(VMI))).encode()
    return body.replace(b'"spec": {', b'"spec": {"n": ' + value + b", ", 1)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize(
    ("value", "words"),
    [
        (LONG, "request.object.spec.n: an integer of 5000 digits is too long to read"),
        (b"-" + LONG, "request.object.spec.n: an integer of 5000 digits is too long to read"),
        (b"[1, NaN]", "request.object.spec.n[1]: NaN is not a number JSON can hold"),
        (b"Infinity", "request.object.spec.n: +Inf is not a number JSON can hold"),
        (b"-1e400", "request.object.spec.n: -Inf is not a number JSON can hold"),
    ],
)
def test_a_number_json_cannot_carry_is_a_400_naming_the_field(
    webhook: Webhook, caplog: pytest.LogCaptureFixture, endpoint: str, value: bytes, words: str
) -> None:
    caplog.set_level("INFO", logger="kubevirt_cca")
    assert_bad_request(*webhook.post(endpoint, _with_spec_member(value)), words)
    assert not [r for r in caplog.records if r.exc_info], "a bad body logged a traceback"


@pytest.mark.parametrize(
    ("annotation", "words"),
    [
        (
            '{"measurementAlgo": "sha256", "x": ' + "7" * 4301 + "}",
            ".x: an integer of 4301 digits is too long to read",
        ),
        ('{"measurementLog": NaN}', ".measurementLog: NaN is not a number JSON can hold"),
    ],
)
def test_a_number_json_cannot_carry_in_the_parameters_is_a_refusal(
    webhook: Webhook, caplog: pytest.LogCaptureFixture, annotation: str, words: str
) -> None:
    caplog.set_level("INFO", logger="kubevirt_cca")
    vmi = labelled(VMI)
    vmi["metadata"] = {**vmi["metadata"], "annotations": {LAUNCH_SECURITY_ANNOTATION: annotation}}
    for endpoint in ("/mutate-vmi", "/validate-vmi"):
        status, answer = webhook.post(endpoint, review(vmi))
        assert status == 200
        response = answer["response"]
        assert response["allowed"] is False and response["status"]["code"] != 500
        message = response["status"]["message"]
        assert f"metadata.annotations[{LAUNCH_SECURITY_ANNOTATION}]{words}" in message
        assert "internal error" not in message
    assert not [r for r in caplog.records if r.exc_info], "a refusal logged a traceback"


def test_a_long_integer_in_the_hook_sidecars_is_no_internal_error(webhook: Webhook) -> None:
    vmi = labelled(VMI)
    sidecars = '[{"image": "x", "n": ' + "5" * 5000 + "}]"
    vmi["metadata"] = {
        **vmi["metadata"],
        "annotations": {"hooks.kubevirt.io/hookSidecars": sidecars},
    }
    for endpoint in ("/mutate-vmi", "/validate-vmi"):
        status, answer = webhook.post(endpoint, review(vmi))
        assert status == 200
        response = answer["response"]
        assert response["allowed"] is False, response
        assert "internal error" not in response["status"]["message"]
        assert "hooks.kubevirt.io/hookSidecars" in response["status"]["message"]
