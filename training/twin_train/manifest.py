"""Writing and reading `manifest.toml` (the model contract of `crates/twin-core/src/manifest.rs`,
documented in `models/README.md`). The format is flat enough that a small emitter suffices;
tests parse the result back with `tomllib` and compare to `ModelManifest`'s fields."""

from __future__ import annotations

import hashlib
import math
import tomllib
from pathlib import Path

# ModelManifest's fields (deny_unknown_fields on the Rust side: nothing else may appear).
TOP_FIELDS = ["name", "version", "id", "trained", "description", "native_metric", "default_target_far"]
TABLES = {
    "input": ["name", "channels", "height", "width"],
    "preprocess": ["binarize", "crop_to_ink", "margin", "mean", "std"],
    "output": ["name", "embedding_size", "l2_normalized"],
}
# A text model's [input] table (`kind = "text"`: TextInput in manifest.rs); text models have no
# [preprocess] table. Image manifests are written without `kind`, exactly as before.
TEXT_INPUT_FIELDS = ["kind", "tokenizer", "max_tokens", "input_ids", "attention_mask", "token_type_ids"]
POINT_FIELDS = ["name", "metric", "target_far", "threshold", "measured_far", "measured_frr", "calibrated_on"]
# `twin calibrate --references` writes these; training keeps them as they are.
SUBJECT_POINT_FIELDS = ["name", "metric", "aggregation", "references", "target_far", "threshold", "measured_far",
                        "measured_frr", "measured_far_random", "calibrated_on"]
JOINT_FIELDS = ["file", "sha256", "input_a", "input_b", "output", "description"]


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"manifest values must be finite, got {v}")
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    raise TypeError(f"unsupported manifest value {v!r}")


def far_name(target_far: float) -> str:
    """Same as twin_core::decision::far_name: 0.01 -> "FAR 1 %", 0.001 -> "FAR 0.1 %"."""
    text = f"{target_far * 100:.3f}".rstrip("0").rstrip(".")
    return f"FAR {text} %"


def dumps(m: dict) -> str:
    unknown = set(m) - set(TOP_FIELDS) - set(TABLES) - {"operating_points", "subject_operating_points", "joint",
                                                        "evaluation"}
    if unknown:
        raise ValueError(f"fields {sorted(unknown)} are not part of ModelManifest")
    lines = [f"{k} = {_value(m[k])}" for k in TOP_FIELDS if k in m]
    for table, fields in TABLES.items():
        if table == "input" and m[table].get("kind") == "text":
            fields = TEXT_INPUT_FIELDS
            if "preprocess" in m:
                raise ValueError("[preprocess] applies to image models only")
        elif table == "preprocess" and table not in m and m["input"].get("kind") == "text":
            continue
        lines += ["", f"[{table}]"] + [f"{k} = {_value(m[table][k])}" for k in fields if k in m[table]]
    for p in m.get("operating_points", []):
        lines += ["", "[[operating_points]]"] + [f"{k} = {_value(p[k])}" for k in POINT_FIELDS if k in p]
    for p in m.get("subject_operating_points", []):
        lines += ["", "[[subject_operating_points]]"] + [f"{k} = {_value(p[k])}" for k in SUBJECT_POINT_FIELDS if k in p]
    if m.get("joint"):
        lines += ["", "[joint]"] + [f"{k} = {_value(m['joint'][k])}" for k in JOINT_FIELDS if k in m["joint"]]
    if m.get("evaluation"):
        lines += ["", "[evaluation]"] + [f"{k} = {_value(float(v))}" for k, v in sorted(m["evaluation"].items())]
    return "\n".join(lines) + "\n"


def write(path: str | Path, m: dict) -> None:
    text = dumps(m)
    tomllib.loads(text)  # never write what cannot be read back
    Path(path).write_text(text)


def read(path: str | Path) -> dict:
    return tomllib.loads(Path(path).read_text())
