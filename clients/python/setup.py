"""Generates the protobuf/gRPC stubs from the repository's proto/ whenever the package is
built or installed (editable too), so they are never committed and never stale. At import,
not in a build step: setuptools checks that every listed package exists before building."""

import importlib.util
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).resolve().parent


def generate_stubs() -> None:
    spec = importlib.util.spec_from_file_location("twin_client_generate", HERE / "generate.py")
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    if generate.PROTO_ROOT.is_dir():
        generate.generate(generate.DEFAULT_OUT)
    elif not (generate.DEFAULT_OUT / "__init__.py").is_file():
        raise SystemExit(f"{generate.PROTO_ROOT} is missing and no stubs were generated before")


generate_stubs()
setup()
