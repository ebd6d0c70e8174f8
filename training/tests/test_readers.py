import zipfile
from pathlib import Path

import pytest

from twin_train import readers
from twin_train.readers import FORGED, GENUINE, ReaderError


def touch(p):
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"\x89PNG")


# Per reader: each file to create below the root, and the (subject, kind) it reads as
# (None: not a name of that dataset, ignored).
BHSIG_FILES = {
    "001/B-S-1-G-01.png": ("001", GENUINE),
    "001/B-S-1-F-30.png": ("001", FORGED),
    "100/B-S-100-G-24.png": ("100", GENUINE),
    "100/notes.png": None,
}
CEDAR_FILES = {
    "full_org/original_12_3.png": ("012", GENUINE),
    "full_forg/forgeries_12_1.png": ("012", FORGED),
    "full_forg/Thumbs.db": None,
}
ICDAR_FILES = {
    "001/S-001-G-001_01.png": ("001", GENUINE),
    "001/S-001-F-0119001_01.png": ("001", FORGED),
    "030/S-030-F-01_0109030.png": ("030", FORGED),
    "030/readme.png": None,
}


@pytest.mark.parametrize(
    "read, files",
    [
        pytest.param(readers.read_bhsig, BHSIG_FILES, id="bhsig"),
        pytest.param(readers.read_cedar, CEDAR_FILES, id="cedar"),
        pytest.param(readers.read_icdar, ICDAR_FILES, id="icdar"),
    ],
)
def test_named_layouts(tmp_path, read, files):
    for name in files:
        touch(tmp_path / name)
    got = [(Path(x.path).relative_to(tmp_path).as_posix(), x.subject, x.kind) for x in read(tmp_path)]
    assert got == sorted((name, *want) for name, want in files.items() if want)


@pytest.mark.parametrize(
    "read, file, message",
    [
        (readers.read_bhsig, "x.png", "BHSig"),  # no BHSig name at all
        (readers.read_generic, "a.png", "<subject>"),  # flat files have no subject folder
        (readers.read_icdar, "002/S-001-G-001_01.png", "folder 002"),  # the wrong writer folder
    ],
)
def test_unexpected_layouts_are_errors(tmp_path, read, file, message):
    touch(tmp_path / file)
    with pytest.raises(ReaderError, match=message):
        read(tmp_path)


def test_generic_layout_with_pattern(tmp_path):
    touch(tmp_path / "alice" / "g1.png")
    touch(tmp_path / "alice" / "forged" / "f1.png")
    touch(tmp_path / "bob" / "sk_2.jpg")
    s = readers.read_generic(tmp_path, r"forged/|^sk_")
    assert [(x.subject, x.kind) for x in s] == [("alice", FORGED), ("alice", GENUINE), ("bob", FORGED)]


def test_omniglot_zip(tmp_path):
    z = tmp_path / "images_background.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("images_background/", "")
        f.writestr("images_background/Greek/character01/0001_01.png", b"a")
        f.writestr("images_background/Greek/character01/0001_02.png", b"b")
        f.writestr("images_background/Greek/character02/0002_01.png", b"c")
    s = readers.extract_omniglot(z, tmp_path / "out")
    assert [x.subject for x in s] == ["Greek/character01"] * 2 + ["Greek/character02"]
    assert (tmp_path / "out/images_background/Greek/character02/0002_01.png").read_bytes() == b"c"


def test_omniglot_runs(tmp_path):
    z = tmp_path / "all_runs.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("run01/class_labels.txt", "run01/test/item01.png run01/training/class02.png\n"
                   "run01/test/item02.png run01/training/class01.png\n")
        for n in ["test/item01", "test/item02", "training/class01", "training/class02"]:
            f.writestr(f"run01/{n}.png", b"x")
    (run,) = readers.extract_omniglot_runs(z, tmp_path / "runs")
    assert run.name == "run01"
    assert [p.rsplit("/", 1)[1] for p in run.train] == ["class01.png", "class02.png"]
    assert run.answer == [1, 0]


def test_list_roundtrip(tmp_path):
    s = [readers.Sample("/a b/x.png", "001", GENUINE), readers.Sample("/y.png", "002", FORGED)]
    readers.write_list(s, tmp_path / "l.tsv")
    assert readers.read_list(tmp_path / "l.tsv") == s


def test_combine_prefixes_every_collection(tmp_path):
    from twin_train.data import combine

    touch(tmp_path / "bhsig" / "001" / "B-S-1-G-01.png")
    touch(tmp_path / "icdar" / "013" / "S-013-F-0101013_01.png")
    touch(tmp_path / "synth" / "w0001" / "w0001-G-01.png")
    touch(tmp_path / "synth" / "w0001" / "w0001-F-01.png")
    s = combine(bhsig=tmp_path / "bhsig", icdar=tmp_path / "icdar", synth=tmp_path / "synth")
    assert sorted((x.subject, x.kind) for x in s) == [
        ("bhsig:001", GENUINE), ("icdar:013", FORGED), ("synth:w0001", FORGED), ("synth:w0001", GENUINE)]
