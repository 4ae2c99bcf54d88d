"""The generated hookproto package matches protos/, and protos/ matches KubeVirt's protocol."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from kubevirt_cca.hookproto import (
    api_info_pb2,
    api_plugins_v1alpha1_pb2,
    api_v1alpha1_pb2,
    api_v1alpha2_pb2,
    api_v1alpha3_pb2,
)
from tests.conftest import ROOT

PACKAGE_DIR = ROOT / "src" / "kubevirt_cca" / "hookproto"
GENERATED = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")


def generated_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name.endswith(GENERATED)}


def test_committed_stubs_are_what_the_generator_writes(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    fresh = generated_files(tmp_path / "kubevirt_cca" / "hookproto")
    committed = generated_files(PACKAGE_DIR)
    assert sorted(fresh) == sorted(committed)
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert stale == [], "run 'uv run python scripts/gen_protos.py' and commit the result"
    assert len(fresh) == 4 * len(list((ROOT / "protos").glob("*.proto")))


# --- the protocol facts, field by field (what virt-launcher's generated Go code expects) -------

STRING, BYTES, INT32, MESSAGE = (
    FieldDescriptor.TYPE_STRING,
    FieldDescriptor.TYPE_BYTES,
    FieldDescriptor.TYPE_INT32,
    FieldDescriptor.TYPE_MESSAGE,
)
REPEATED = "repeated"
ON_DEFINE_DOMAIN_MESSAGES = {
    "OnDefineDomainParams": {"domainXML": (1, BYTES, ""), "vmi": (2, BYTES, "")},
    "OnDefineDomainResult": {"domainXML": (1, BYTES, "")},
}
PRE_CLOUD_INIT_ISO_MESSAGES = {
    "PreCloudInitIsoParams": {
        "cloudInitNoCloudSource": (1, BYTES, ""),
        "vmi": (2, BYTES, ""),
        "cloudInitData": (3, BYTES, ""),
    },
    "PreCloudInitIsoResult": {
        "cloudInitNoCloudSource": (1, BYTES, ""),
        "cloudInitData": (3, BYTES, ""),
    },
}
SHUTDOWN_MESSAGES: dict[str, dict[str, tuple[int, int, str]]] = {
    "ShutdownParams": {},
    "ShutdownResult": {},
}
ON_DEFINE_DOMAIN = ("OnDefineDomain", "OnDefineDomainParams", "OnDefineDomainResult")
PRE_CLOUD_INIT_ISO = ("PreCloudInitIso", "PreCloudInitIsoParams", "PreCloudInitIsoResult")
SHUTDOWN = ("Shutdown", "ShutdownParams", "ShutdownResult")

PROTOCOL = {
    "info": (
        api_info_pb2,
        "kubevirt.hooks.info",
        "Info",
        [("Info", "InfoParams", "InfoResult")],
        {
            "InfoParams": {},
            "InfoResult": {
                "name": (1, STRING, ""),
                "hookPoints": (3, MESSAGE, REPEATED),
                "versions": (4, STRING, REPEATED),
            },
            "HookPoint": {"name": (1, STRING, ""), "priority": (2, INT32, "")},
        },
    ),
    "v1alpha1": (
        api_v1alpha1_pb2,
        "kubevirt.hooks.v1alpha1",
        "Callbacks",
        [ON_DEFINE_DOMAIN],
        ON_DEFINE_DOMAIN_MESSAGES,
    ),
    "v1alpha2": (
        api_v1alpha2_pb2,
        "kubevirt.hooks.v1alpha2",
        "Callbacks",
        [ON_DEFINE_DOMAIN, PRE_CLOUD_INIT_ISO],
        {**ON_DEFINE_DOMAIN_MESSAGES, **PRE_CLOUD_INIT_ISO_MESSAGES},
    ),
    "v1alpha3": (
        api_v1alpha3_pb2,
        "kubevirt.hooks.v1alpha3",
        "Callbacks",
        [ON_DEFINE_DOMAIN, PRE_CLOUD_INIT_ISO, SHUTDOWN],
        {**ON_DEFINE_DOMAIN_MESSAGES, **PRE_CLOUD_INIT_ISO_MESSAGES, **SHUTDOWN_MESSAGES},
    ),
    # KubeVirt Plugins (VEP 190): the domain hook virt-launcher dials without a handshake.
    "plugins_v1alpha1": (
        api_plugins_v1alpha1_pb2,
        "kubevirt.hooks.plugins.v1alpha1",
        "DomainHookService",
        [("MutateDomain", "MutateDomainRequest", "MutateDomainResponse")],
        {
            "MutateDomainRequest": {
                "domain_type": (1, STRING, ""),
                "domain": (2, BYTES, ""),
                "vmi": (3, BYTES, ""),
                "sidecar_context": (4, MESSAGE, ""),
            },
            "SidecarContext": {"invocation_context": (1, STRING, "")},
            "MutateDomainResponse": {"domain": (1, BYTES, "")},
        },
    ),
}


def fields(message: Descriptor) -> dict[str, tuple[int, int, str]]:
    return {f.name: (f.number, f.type, REPEATED if f.is_repeated else "") for f in message.fields}


@pytest.mark.parametrize("name", list(PROTOCOL))
def test_proto_matches_kubevirts_hook_protocol(name: str) -> None:
    module: ModuleType
    module, package, service_name, methods, messages = PROTOCOL[name]
    file = module.DESCRIPTOR
    assert 'syntax = "proto3";' in (ROOT / "protos" / f"api_{name}.proto").read_text()
    assert file.package == package
    assert list(file.services_by_name) == [service_name]
    service = file.services_by_name[service_name]
    assert service.full_name == f"{package}.{service_name}"
    assert [(m.name, m.input_type.name, m.output_type.name) for m in service.methods] == methods
    assert sorted(file.message_types_by_name) == sorted(messages)
    for message_name, expected in messages.items():
        assert fields(file.message_types_by_name[message_name]) == expected, message_name
    if name == "plugins_v1alpha1":
        request = file.message_types_by_name["MutateDomainRequest"]
        context = request.fields_by_name["sidecar_context"].message_type
        assert context.full_name == "kubevirt.hooks.plugins.v1alpha1.SidecarContext"
        # Field 2 of SidecarContext is reserved in KubeVirt's proto: never reuse it.
        assert "reserved 2;" in (ROOT / "protos" / f"api_{name}.proto").read_text()
    if name == "info":
        hook_points = file.message_types_by_name["InfoResult"].fields_by_name["hookPoints"]
        assert hook_points.message_type.full_name == "kubevirt.hooks.info.HookPoint"
