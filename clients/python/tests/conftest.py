"""One real `twin serve` for the client, REST and console tests: embedded store and
queue in a temporary directory, the shipped signature model (default) and the face
model, API keys for each scope, and a few synthetic signatures to enrol."""

from __future__ import annotations

import dataclasses
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


def _twin_bin() -> Path:
    env = os.environ.get("TWIN_BIN")
    if env:
        return Path(env)
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return target / "debug" / "twin"


def _ort_library() -> str:
    return os.environ.get(
        "TWIN_EMBED__ORT_LIBRARY", str(REPO / "runtime" / "libonnxruntime.so")
    )


@dataclasses.dataclass
class TwinServer:
    """A running `twin serve`: gRPC and REST/console on the same address."""

    addr: str  # "127.0.0.1:PORT", for gRPC clients
    http_url: str  # "http://127.0.0.1:PORT", for REST and the console
    keys: dict  # scope ("read", "write", "admin") -> key
    data_dir: Path
    images: Path  # synthetic signatures: images/<writer>/<writer>-G-01.png, -F-01.png
    log: Path
    bin: Path


@pytest.fixture(scope="session")
def twin_server(tmp_path_factory) -> TwinServer:
    twin = _twin_bin()
    if not twin.exists():
        pytest.fail(f"{twin} not found: build with `cargo build --workspace --bins` or set TWIN_BIN")
    root = tmp_path_factory.mktemp("twin")
    keys = {scope: f"{scope}-key-{os.urandom(12).hex()}" for scope in ("read", "write", "admin")}
    keys_file = root / "keys.txt"
    keys_file.write_text("".join(f"{scope} {key} name={scope}-test\n" for scope, key in keys.items()))
    images = root / "images"
    subprocess.run(
        [str(twin), "synth", "--out", str(images), "--writers", "4", "--genuine", "5", "--forgeries", "2"],
        check=True,
        capture_output=True,
    )
    env = dict(os.environ)
    env.update(
        {
            "TWIN_EMBED__ORT_LIBRARY": _ort_library(),
            "TWIN_GATEWAY__API_KEYS_FILE": str(keys_file),
            "TWIN_GATEWAY__METRICS_ADDR": "",
            "RUST_LOG": "info",
        }
    )
    log = root / "serve.log"
    args = [
        str(twin), "serve", "--addr", "127.0.0.1:0", "--data-dir", str(root / "data"),
        "--model", str(REPO / "models" / "signature-v2"),
        "--model", str(REPO / "models" / "face-v1"),
    ]
    with open(log, "wb") as stderr:
        proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)
    addr = None
    deadline = time.monotonic() + 180
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        match = re.search(r"twin serving on (\S+)", line)
        if match:
            addr = match.group(1)
            break
    if addr is None:
        proc.kill()
        pytest.fail(f"twin serve did not become ready; its log:\n{log.read_text()}")
    server = TwinServer(
        addr=addr, http_url=f"http://{addr}", keys=keys, data_dir=root / "data",
        images=images, log=log, bin=twin,
    )
    try:
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
