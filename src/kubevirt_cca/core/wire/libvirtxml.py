"""Reading libvirt XML (domains, domain capabilities) safely, in one place.

The parser reads no DTD, resolves no entity and fetches nothing: the documents come from
virt-launcher or virsh, but the offline commands are also fed files by people, so every input is
treated as hostile. A document with a DOCTYPE, entity declarations or entity references is
refused outright: libvirt never writes one, and passing an unresolved ``&x;`` on would only make
libvirt fail later with a parser error nobody can trace back.
"""

from __future__ import annotations

from lxml import etree

from kubevirt_cca.errors import CCAError

_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    huge_tree=False,
    remove_blank_text=False,
)

_ENTITY_ERRORS = frozenset(
    {etree.ErrorTypes.ERR_UNDECLARED_ENTITY, etree.ErrorTypes.WAR_UNDECLARED_ENTITY}
)


def parse_document(
    xml: str | bytes, *, root: str, name: str, kind: str, error: type[CCAError]
) -> etree._Element:
    """Parse ``xml`` whose root element must be ``<root>``; ``error`` says why not.

    ``name`` names the text in messages ("domain XML"), ``kind`` the document it must be
    ("a libvirt domain").
    """
    data = xml.encode("utf-8") if isinstance(xml, str) else xml
    try:
        element = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        if getattr(exc, "code", None) in _ENTITY_ERRORS:  # lxml's stubs lack .code
            raise error(
                f"{name} contains an entity reference that is not defined ({exc}); "
                "libvirt XML never uses entities, "
                "and kubevirt-cca refuses it rather than pass it on"
            ) from exc
        raise error(f"{name} is not well-formed: {exc}") from exc
    _refuse_dtd(element, name=name, error=error)
    if element.tag != root:
        found = str(element.tag).rsplit("}", 1)[-1]
        raise error(f"not {kind}: the root element is <{found}>, expected <{root}>")
    return element


def _refuse_dtd(element: etree._Element, *, name: str, error: type[CCAError]) -> None:
    docinfo = element.getroottree().docinfo
    if getattr(docinfo, "doctype", "") or docinfo.internalDTD is not None:
        raise error(
            f"{name} has a DOCTYPE (a document type declaration, "
            "possibly with entity declarations); libvirt XML never has one, "
            "and kubevirt-cca refuses it rather than pass it on"
        )
    for entity in element.iter(etree.Entity):
        raise error(
            f"{name} contains the entity reference {entity.text}; libvirt XML never uses entities, "
            "and kubevirt-cca refuses it rather than pass it on (write the character itself, "
            "or &amp; &lt; &gt; &quot; &apos;)"
        )
