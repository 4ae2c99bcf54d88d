"""Only the tags the CCA token formats define are read as a token (issue 24, item 8): a
neighbour of 399 or 907 is refused with a message naming the tag, never parsed as a collection."""

from __future__ import annotations

from typing import Literal

import cbor2
import pytest

from kubevirt_cca.core.attestation.token import parse_token
from kubevirt_cca.errors import AttestationError
from tests.attestation.builder import TokenSpec, build_token


@pytest.mark.parametrize("tag", [398, 400, 906, 908, 17, 19, 1000])
def test_a_collection_under_another_tag_is_refused(spec: TokenSpec, tag: int) -> None:
    token = cbor2.loads(build_token(spec.but(form="tag-399")))
    assert isinstance(token, cbor2.CBORTag) and token.tag == 399
    retagged = cbor2.dumps(cbor2.CBORTag(tag, token.value))
    with pytest.raises(AttestationError, match=f"the token has CBOR tag {tag}; expected 399"):
        parse_token(retagged)


@pytest.mark.parametrize(("form", "tag"), [("tag-399", 399), ("tag-907", 907)])
def test_each_form_is_read_under_its_own_tag_only(
    spec: TokenSpec, form: Literal["tag-399", "tag-907"], tag: int
) -> None:
    token = cbor2.loads(build_token(spec.but(form=form)))
    assert token.tag == tag
    assert parse_token(cbor2.dumps(token)).form == form
    other = 907 if tag == 399 else 399
    with pytest.raises(AttestationError):
        parse_token(cbor2.dumps(cbor2.CBORTag(other, token.value)))
