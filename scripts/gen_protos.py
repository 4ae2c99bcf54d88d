"""Regenerate ``src/kubevirt_cca/hookproto/`` from ``protos/*.proto``.

    uv run python scripts/gen_protos.py            # rewrite the committed modules
    uv run python scripts/gen_protos.py --out DIR  # write them under DIR/kubevirt_cca/hookproto/

grpcio-tools' bundled protoc writes the message modules (``*_pb2.py``) and the gRPC modules
(``*_pb2_grpc.py``); mypy-protobuf's plugins write their type stubs (``*.pyi``), so the package
type-checks under ``mypy --strict`` without checking the generated code itself.

The ``.proto`` files sit flat in ``protos/``; protoc sees them as ``kubevirt_cca/hookproto/*.proto``
(``-I kubevirt_cca/hookproto=protos``), so the generated modules import each other through the
package. ``tests/hook/test_protos.py`` runs this script into a temporary directory and compares
the result with the committed files byte for byte.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
PACKAGE = Path("kubevirt_cca", "hookproto")
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")


def plugin(name: str) -> str:
    """The path of a protoc plugin installed beside this Python (mypy-protobuf's scripts)."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise SystemExit(
            f"gen_protos: {name} not found; run 'uv sync' (mypy-protobuf is a dev dependency)"
        )
    return found


def generate(out: Path) -> list[Path]:
    """Write the generated modules under ``out/kubevirt_cca/hookproto``; return their paths."""
    target = out / PACKAGE
    target.mkdir(parents=True, exist_ok=True)
    for old in target.iterdir():
        if old.name.endswith(GENERATED_SUFFIXES):
            old.unlink()
    sources = sorted(p.name for p in PROTOS.glob("*.proto"))
    if not sources:
        raise SystemExit(f"gen_protos: no .proto files in {PROTOS}")
    args = [
        "grpc_tools.protoc",
        f"-I{PACKAGE.as_posix()}={PROTOS}",
        f"--plugin=protoc-gen-mypy={plugin('protoc-gen-mypy')}",
        f"--plugin=protoc-gen-mypy_grpc={plugin('protoc-gen-mypy_grpc')}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out=quiet:{out}",
        f"--mypy_grpc_out=quiet:{out}",
        *(f"{PACKAGE.as_posix()}/{name}" for name in sources),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("gen_protos: protoc failed (its message is above)")
    return sorted(p for p in target.iterdir() if p.name.endswith(GENERATED_SUFFIXES))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "src",
        help="source root to write kubevirt_cca/hookproto/ under (default: src)",
    )
    args = parser.parse_args()
    for path in generate(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
