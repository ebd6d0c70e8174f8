"""The README's example runs as written against a real gateway."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
MARKER = "<!-- runnable example: tests/test_readme.py runs this block -->"


def example_code() -> str:
    text = README.read_text(encoding="utf-8")
    assert MARKER in text, "the README lost its runnable example marker"
    after = text.split(MARKER, 1)[1]
    match = re.match(r"\s*```python\n(.*?)\n```", after, flags=re.DOTALL)
    assert match, "the marker must stand right before a ```python block"
    return match.group(1)


def test_readme_example_runs_against_twin_serve(twin_server, tmp_path):
    script = tmp_path / "readme_example.py"
    script.write_text(example_code(), encoding="utf-8")
    env = dict(os.environ)
    env.update(
        TWIN_ADDR=twin_server.addr,
        TWIN_API_KEY=twin_server.keys["write"],
        TWIN_IMAGES=str(twin_server.images),
    )
    done = subprocess.run(
        [sys.executable, str(script)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    out = done.stdout
    assert "default: signature-v2" in out
    assert out.count("enrolled ") == 3 and "done" in out
    assert "batch: 3 accepted, 0 rejected, 3 jobs done" in out
    assert "verify: match=" in out
    assert out.count("verify_subject ") == 2 and "over 3 references" in out
    assert "search: " in out
    assert "refused: INVALID_ARGUMENT - a:" in out
    assert out.count("deleted 3 points") == 2
    # The progress bars go to stderr.
    assert "enrolling" in done.stderr and "3/3" in done.stderr
