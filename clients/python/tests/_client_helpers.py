"""Shared bits of the twin_client tests (fixtures live in the test modules that use them,
so that conftest.py stays the lead's)."""

from __future__ import annotations

import uuid
from pathlib import Path


def uid(prefix: str) -> str:
    """A subject id no other test of the session (of any file) uses."""
    return f"pyc-{prefix}-{uuid.uuid4().hex[:10]}"


def genuine(images: Path, writer: int, n: int) -> Path:
    """Genuine sample n (1-based) of synthetic writer `writer` (1-based)."""
    w = f"w{writer:04d}"
    return images / w / f"{w}-G-{n:02d}.png"


def forgery(images: Path, writer: int, n: int) -> Path:
    w = f"w{writer:04d}"
    return images / w / f"{w}-F-{n:02d}.png"
