"""Data readers: turn a dataset on disk into `Sample(path, subject, kind)` lists.

Every reader takes paths and assumes nothing about where data lives. `kind` is "genuine" or
"forged" for signatures; Omniglot characters are all "genuine" (one subject per character).
"""

from __future__ import annotations

import csv
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}
GENUINE = "genuine"
FORGED = "forged"


@dataclass(frozen=True, order=True)
class Sample:
    path: str
    subject: str
    kind: str


class ReaderError(ValueError):
    """A dataset that does not look like what its reader expects."""


def _images(root: Path) -> list[Path]:
    if not root.is_dir():
        raise ReaderError(f"dataset root {root} is not a directory; pass the folder that holds the images")
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _named(root: Path, name: re.Pattern, genuine: str, layout: str) -> list[Sample]:
    """The images below `root` whose stem matches `name`, sorted: the subject is the number in
    its group "writer" zero-padded to 3 digits, the sample genuine when its group "kind" is
    `genuine` and forged otherwise. None is an error that names the `layout` expected."""
    out = []
    for p in _images(root):
        m = name.match(p.stem)
        if m is None:
            continue
        writer = f"{int(m.group('writer')):03d}"
        out.append(Sample(str(p), writer, GENUINE if m.group("kind") == genuine else FORGED))
    if not out:
        raise ReaderError(f"no {layout} images under {root}")
    return sorted(out)


# BHSig260: B-S-<w>-G-NN.png (genuine), B-S-<w>-F-NN.png (skilled forgery); H-S-... for Hindi.
BHSIG_NAME = re.compile(r"^[A-Za-z]-S-(?P<writer>\d+)-(?P<kind>[GF])-(\d+)$")


def read_bhsig(root: str | os.PathLike) -> list[Sample]:
    """BHSig260 layout: any folders below `root`, file names `B-S-<w>-G-NN` / `B-S-<w>-F-NN`.

    Subjects are the writer number zero-padded to 3 digits ("001"), whatever the file says.
    """
    return _named(Path(root), BHSIG_NAME, "G", "BHSig-style (B-S-<w>-G-NN.png)")


# CEDAR: original_<w>_<i>.png, forgeries_<w>_<i>.png
CEDAR_NAME = re.compile(r"^(?P<kind>original|forgeries)_(?P<writer>\d+)_(\d+)$")


def read_cedar(root: str | os.PathLike) -> list[Sample]:
    """CEDAR layout: `original_<w>_<i>` (genuine) and `forgeries_<w>_<i>` anywhere below `root`."""
    return _named(Path(root), CEDAR_NAME, "original", "CEDAR-style (original_<w>_<i>.png)")


def read_generic(root: str | os.PathLike, forged_pattern: str = r"(?i)forg") -> list[Sample]:
    """Generic layout `<root>/<subject>/…/<file>`: the subject is the first folder below `root`;
    a file whose path below the subject folder matches `forged_pattern` (a regex) is forged,
    every other one genuine."""
    root = Path(root)
    pattern = re.compile(forged_pattern)
    out = []
    for p in _images(root):
        rel = p.relative_to(root)
        if len(rel.parts) < 2:
            raise ReaderError(f"{p} lies directly in {root}; the generic layout is <root>/<subject>/<file>")
        inner = "/".join(rel.parts[1:])
        out.append(Sample(str(p), rel.parts[0], FORGED if pattern.search(inner) else GENUINE))
    if not out:
        raise ReaderError(f"no images under {root}")
    return sorted(out)


def extract_omniglot(zip_path: str | os.PathLike, dest: str | os.PathLike) -> list[Sample]:
    """Omniglot's `images_background.zip` / `images_evaluation.zip`: extracts into `dest` (once)
    and returns one subject per character, `<Alphabet>/character<NN>`."""
    dest = Path(dest)
    out = []
    with zipfile.ZipFile(zip_path) as z:
        for name in sorted(z.namelist()):
            if not name.lower().endswith(".png"):
                continue
            parts = name.split("/")
            if len(parts) != 4:
                raise ReaderError(f"{zip_path}: {name} is not <set>/<Alphabet>/<character>/<file>.png")
            target = dest / name
            if not target.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(z.read(name))
            out.append(Sample(str(target), f"{parts[1]}/{parts[2]}", GENUINE))
    if not out:
        raise ReaderError(f"{zip_path} holds no PNG images")
    return out


@dataclass(frozen=True)
class OneShotRun:
    """One of Lake's 20-way one-shot runs: 20 test items, each matching one of 20 training images."""

    name: str
    test: list[str]  # paths of the 20 test images
    train: list[str]  # paths of the 20 candidate images
    answer: list[int]  # answer[i] = index into `train` of the class of test[i]


def extract_omniglot_runs(zip_path: str | os.PathLike, dest: str | os.PathLike) -> list[OneShotRun]:
    """Lake's `all_runs.zip`: extracts into `dest` and reads each run's `class_labels.txt`."""
    dest = Path(dest)
    runs = []
    with zipfile.ZipFile(zip_path) as z:
        names = z.namelist()
        for name in names:
            if name.endswith("/"):
                continue
            target = dest / name
            if not target.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(z.read(name))
        for label_file in sorted(n for n in names if n.endswith("class_labels.txt")):
            run = label_file.split("/")[0]
            pairs = [line.split() for line in z.read(label_file).decode().splitlines() if line.strip()]
            train = sorted({t for _, t in pairs})
            index = {t: i for i, t in enumerate(train)}
            runs.append(
                OneShotRun(
                    run,
                    [str(dest / q) for q, _ in pairs],
                    [str(dest / t) for t in train],
                    [index[t] for _, t in pairs],
                )
            )
    if not runs:
        raise ReaderError(f"{zip_path} holds no run*/class_labels.txt")
    return runs


# ICDAR 2011 "sign_data" (as in ../shared/data/icdar2011-sign-data): <root>/<w>/S-<w>-G-<w>_NN.png
# (genuine) and S-<w>-F-<forger><w>_NN.png (skilled forgery of <w> by <forger>); the folder is the
# writer whose signature it is, genuine or forged.
ICDAR_NAME = re.compile(r"^S-(?P<writer>\d+)-(?P<kind>[GF])-[\d_]+$")


def read_icdar(root: str | os.PathLike) -> list[Sample]:
    """ICDAR 2011 sign_data layout: `<root>/<w>/S-<w>-G-…` and `S-<w>-F-…`; the subject is the
    writer folder (zero-padded to 3 digits), which must agree with the number in the name."""
    root = Path(root)
    samples = _named(root, ICDAR_NAME, "G", "ICDAR-style (S-<w>-G-<w>_NN.png)")
    for sample in samples:
        folder = Path(sample.path).relative_to(root).parts[0]
        if folder.isdigit() and f"{int(folder):03d}" != sample.subject:
            raise ReaderError(f"{sample.path}: the name says writer {sample.subject} but it lies in folder {folder}")
    return samples


READERS = {"bhsig": read_bhsig, "cedar": read_cedar, "icdar": read_icdar, "generic": read_generic}


def read(kind: str, root: str, forged_pattern: str | None = None) -> list[Sample]:
    if kind not in READERS:
        raise ReaderError(f"unknown reader {kind!r}; use one of {sorted(READERS)}")
    if kind == "generic" and forged_pattern is not None:
        return read_generic(root, forged_pattern)
    return READERS[kind](root)


def write_list(samples: Iterable[Sample], path: str | os.PathLike) -> None:
    """The list file `twin preprocess --list` reads: TSV `path<TAB>subject<TAB>kind`, no header."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        for s in samples:
            w.writerow([s.path, s.subject, s.kind])


def read_list(path: str | os.PathLike) -> list[Sample]:
    out = []
    with open(path, newline="") as f:
        for row in csv.reader(f, delimiter="\t"):
            if not row or row[0].startswith("#"):
                continue
            row += [""] * (3 - len(row))
            out.append(Sample(row[0], row[1], row[2] or GENUINE))
    return out
