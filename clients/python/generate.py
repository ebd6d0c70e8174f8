#!/usr/bin/env python3
"""Generates the protobuf and gRPC stubs of twin_client from the repository's proto/.

    python clients/python/generate.py            # into src/twin_client/_proto/
    python clients/python/generate.py --out DIR  # elsewhere (the freshness test does)

Runs grpc_tools.protoc over proto/twin/v1/*.proto (include path proto/, plus the
google/protobuf/*.proto that grpc_tools bundles) and writes the modules flat into one
package: twin/v1/common.proto becomes common_pb2.py (+ .pyi) and common_pb2_grpc.py. The
generated `from twin.v1 import common_pb2` lines are rewritten to `from . import
common_pb2`, so the stubs resolve inside twin_client without a top-level `twin` package.

The output is deterministic: regenerating with the same grpcio-tools gives byte-identical
files, which tests/test_stubs_fresh.py checks against the installed ones (setup.py runs
this at build and install time).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PROTO_ROOT = REPO / "proto"
PROTO_PACKAGE = "twin/v1"
DEFAULT_OUT = HERE / "src" / "twin_client" / "_proto"

INIT = '''"""Generated protobuf and gRPC stubs of twin.v1 (by clients/python/generate.py; do not edit)."""
'''

# `from twin.v1 import common_pb2 as twin_dot_v1_dot_common__pb2` -> `from . import ...`
_IMPORT = re.compile(r"^from twin\.v1 import ", re.MULTILINE)
# The .pyi files qualify message types of other files by module alias only, but mypy-style
# `import twin.v1.x` lines never appear; be strict and fail loudly if they do.
_ABSOLUTE = re.compile(r"^import twin\.|^from twin\b", re.MULTILINE)


def protos() -> list[Path]:
    files = sorted((PROTO_ROOT / PROTO_PACKAGE).glob("*.proto"))
    if not files:
        raise SystemExit(f"no .proto files under {PROTO_ROOT / PROTO_PACKAGE}")
    return files


def generate(out: Path) -> list[Path]:
    """Writes the stubs into `out` (created; files of ours there are replaced)."""
    from grpc_tools import protoc  # imported here: only generating needs grpcio-tools
    import grpc_tools

    bundled = Path(grpc_tools.__file__).resolve().parent / "_proto"
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"-I{bundled}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            *(str(p.relative_to(PROTO_ROOT)) for p in protos()),
        ]
        rc = protoc.main(args)
        if rc != 0:
            raise SystemExit(f"protoc failed with exit code {rc}")
        generated = sorted((Path(tmp) / PROTO_PACKAGE).iterdir())
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for src in generated:
            if src.suffix not in (".py", ".pyi"):
                continue
            text = _IMPORT.sub("from . import ", src.read_text(encoding="utf-8"))
            if _ABSOLUTE.search(text):
                raise SystemExit(f"{src.name}: an import of the twin package was left unrewritten")
            dst = out / src.name
            dst.write_text(text, encoding="utf-8", newline="\n")
            written.append(dst)
        init = out / "__init__.py"
        init.write_text(INIT, encoding="utf-8", newline="\n")
        written.append(init)
    # Modules of protos that no longer exist would linger: remove them.
    keep = {p.name for p in written}
    for stale in out.iterdir():
        if stale.is_file() and stale.name not in keep and re.search(r"_pb2(_grpc)?\.pyi?$", stale.name):
            stale.unlink()
    return sorted(written)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output package (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
