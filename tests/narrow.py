"""Narrowing helpers for mypy --strict in tests: each fails the test where the value is missing.

lxml-stubs type ``find`` as optional and attribute values as ``str | bytes`` (lxml returns
``str`` on Python 3); grpc's stubs type ``RpcError.details()`` as optional.
"""

from __future__ import annotations

from typing import cast

import grpc
from lxml import etree


def find(element: etree._Element, path: str) -> etree._Element:
    """The first element at ``path`` under ``element``; the test fails if there is none."""
    found = element.find(path)
    assert found is not None, f"no <{path}> in the document"
    return found


def attributes(element: etree._Element) -> dict[str, str]:
    """The element's attributes as a plain dict (lxml-stubs say ``str | bytes``; lxml gives str)."""
    return cast("dict[str, str]", dict(element.attrib))


def details(error: grpc.RpcError) -> str:
    """The status message of a failed gRPC call."""
    message = error.details()
    assert isinstance(message, str)
    return message


def xpath_elements(element: etree._Element, path: str) -> list[etree._Element]:
    """The elements an XPath selects (lxml-stubs type any XPath result as a union of scalars)."""
    return cast("list[etree._Element]", element.xpath(path))
