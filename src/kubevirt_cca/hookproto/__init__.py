"""Generated protobuf and gRPC modules for KubeVirt's hook sidecar protocol.

Do not edit: ``scripts/gen_protos.py`` writes every module here from ``protos/*.proto``, and
``tests/hook/test_protos.py`` fails when they drift. ruff skips this package; mypy reads the
generated ``.pyi`` stubs (mypy-protobuf) instead of the generated code.

- ``api_info_pb2``: ``kubevirt.hooks.info`` (``Info/Info``, ``InfoResult``, ``HookPoint``)
- ``api_v1alpha1_pb2`` .. ``api_v1alpha3_pb2``: ``kubevirt.hooks.<version>`` (``Callbacks``)
- ``*_pb2_grpc``: the matching client stubs and servicer base classes
"""
