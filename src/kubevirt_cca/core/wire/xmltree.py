"""Editing an lxml tree the way a person would: children indented like their siblings.

The rewrite adds and removes elements in documents that are often indented (virt-launcher's,
people's files); these keep the layout, so the output reads like the input and a diff shows
only what changed.
"""

from __future__ import annotations

from lxml import etree


def remove(element: etree._Element) -> None:
    """Remove an element and the whitespace that indented it, keeping its parent's layout."""
    parent = element.getparent()
    if parent is None:
        return
    previous = element.getprevious()
    if element.tail is not None and element.tail.strip() == "":
        if previous is not None:
            previous.tail = element.tail
        else:
            parent.text = element.tail
    parent.remove(element)


def drop_attribute(element: etree._Element, name: str) -> None:
    if name in element.attrib:
        del element.attrib[name]


def append(parent: etree._Element, tag: str, nsmap: dict[str, str] | None = None) -> etree._Element:
    """Append a child, indented like its siblings when the document is indented."""
    element = etree.SubElement(parent, tag, nsmap=nsmap) if nsmap else etree.SubElement(parent, tag)
    previous = element.getprevious()
    if previous is not None:
        before = previous.getprevious()
        sibling_indent = before.tail if before is not None else parent.text
        if _is_indent(sibling_indent):
            element.tail = previous.tail
            previous.tail = sibling_indent
    else:
        own_indent = _indent_of(parent)
        if own_indent is not None:
            parent.text = own_indent + "  "
            element.tail = own_indent
    return element


def _is_indent(text: str | None) -> bool:
    return text is not None and "\n" in text and text.strip() == ""


def _indent_of(element: etree._Element) -> str | None:
    """The whitespace (newline + spaces) that precedes ``element``, when there is such."""
    previous = element.getprevious()
    parent = element.getparent()
    if previous is not None:
        text = previous.tail
    elif parent is not None:
        text = parent.text
    else:
        return None
    return text if _is_indent(text) else None


def place_after(parent: etree._Element, element: etree._Element, tag: str) -> None:
    anchor = parent.find(tag)
    if anchor is not None:
        anchor.addnext(element)
