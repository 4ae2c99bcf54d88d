"""Reading libvirt XML (domains, domain capabilities) safely, in one place.

The parser reads no DTD, resolves no entity and fetches nothing: the documents come from
virt-launcher or virsh, but the offline commands are also fed files by people, so every input is
treated as hostile.
"""

from __future__ import annotations

from lxml import etree

from kubevirt_cca.errors import CCAError

_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
    remove_blank_text=False,
)


def parse_document(xml: str | bytes, *, root: str, name: str, kind: str,
                   error: type[CCAError]) -> etree._Element:
    """Parse ``xml`` whose root element must be ``<root>``; ``error`` says why not.

    ``name`` names the text in messages ("domain XML"), ``kind`` the document it must be
    ("a libvirt domain").
    """
    data = xml.encode("utf-8") if isinstance(xml, str) else xml
    try:
        element = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise error(f"{name} is not well-formed: {exc}") from exc
    if element.tag != root:
        found = str(element.tag).rsplit("}", 1)[-1]
        raise error(f"not {kind}: the root element is <{found}>, expected <{root}>")
    return element
