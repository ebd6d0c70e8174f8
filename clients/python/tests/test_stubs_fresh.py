"""The installed stubs in src/twin_client/_proto (generated from proto/ when the package is
installed, see setup.py) are what generate.py makes from proto/ now: a proto change
without a reinstall fails here."""

from __future__ import annotations

import importlib.util
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGE = HERE.parent
COMMITTED = PACKAGE / "src" / "twin_client" / "_proto"


def _generate_module():
    spec = importlib.util.spec_from_file_location("twin_client_generate", PACKAGE / "generate.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def _stub_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.suffix in (".py", ".pyi")}


def test_installed_stubs_match_a_fresh_generation(tmp_path):
    generate = _generate_module()
    generate.generate(tmp_path / "_proto")
    fresh = _stub_files(tmp_path / "_proto")
    committed = _stub_files(COMMITTED)
    assert sorted(fresh) == sorted(committed), "stub files differ: reinstall (bash clients/python/setup.sh)"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"stale stubs {stale}: reinstall the package (bash clients/python/setup.sh)"


def test_every_proto_has_its_stubs():
    generate = _generate_module()
    for proto in generate.protos():
        stem = proto.stem
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"):
            assert (COMMITTED / f"{stem}{suffix}").is_file(), f"{stem}{suffix} missing"


def test_stubs_import_inside_the_package_and_match_the_runtime():
    # Importing runs protobuf's gencode/runtime version check and resolves the rewritten
    # relative imports; no top-level `twin` package may be needed.
    import importlib
    import sys

    for proto in _generate_module().protos():
        importlib.import_module(f"twin_client._proto.{proto.stem}_pb2")
        importlib.import_module(f"twin_client._proto.{proto.stem}_pb2_grpc")
    assert "twin" not in sys.modules
    text = "\n".join(p.read_text() for p in COMMITTED.glob("*.py*"))
    assert "from twin.v1" not in text and "import twin." not in text


def test_every_rpc_has_a_client_method():
    """Each rpc of each service in proto/twin/v1 is a method of Client (snake_case)."""
    import re

    from twin_client import Client

    generate = _generate_module()
    rpcs = []
    for proto in generate.protos():
        rpcs += re.findall(r"^\s*rpc\s+(\w+)\s*\(", proto.read_text(), flags=re.MULTILINE)
    assert len(rpcs) >= 16
    for rpc in rpcs:
        method = re.sub(r"(?<!^)(?=[A-Z])", "_", rpc).lower()
        assert callable(getattr(Client, method, None)), f"Client has no {method} for rpc {rpc}"
