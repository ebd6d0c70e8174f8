import zipfile

import pytest

from twin_train import readers
from twin_train.readers import FORGED, GENUINE, ReaderError


def touch(p):
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"\x89PNG")


def test_bhsig_names(tmp_path):
    touch(tmp_path / "001" / "B-S-1-G-01.png")
    touch(tmp_path / "001" / "B-S-1-F-30.png")
    touch(tmp_path / "100" / "B-S-100-G-24.png")
    touch(tmp_path / "100" / "notes.png")  # not a BHSig name: ignored
    s = readers.read_bhsig(tmp_path)
    assert [(x.subject, x.kind) for x in s] == [("001", FORGED), ("001", GENUINE), ("100", GENUINE)]
    assert s[0].path.endswith("B-S-1-F-30.png")


def test_bhsig_empty_is_an_error(tmp_path):
    touch(tmp_path / "x.png")
    with pytest.raises(ReaderError, match="BHSig"):
        readers.read_bhsig(tmp_path)


def test_cedar_names(tmp_path):
    touch(tmp_path / "full_org" / "original_12_3.png")
    touch(tmp_path / "full_forg" / "forgeries_12_1.png")
    touch(tmp_path / "full_forg" / "Thumbs.db")
    s = readers.read_cedar(tmp_path)
    assert {(x.subject, x.kind) for x in s} == {("012", GENUINE), ("012", FORGED)}


def test_generic_layout_with_pattern(tmp_path):
    touch(tmp_path / "alice" / "g1.png")
    touch(tmp_path / "alice" / "forged" / "f1.png")
    touch(tmp_path / "bob" / "sk_2.jpg")
    s = readers.read_generic(tmp_path, r"forged/|^sk_")
    assert [(x.subject, x.kind) for x in s] == [("alice", FORGED), ("alice", GENUINE), ("bob", FORGED)]


def test_generic_rejects_flat_files(tmp_path):
    touch(tmp_path / "a.png")
    with pytest.raises(ReaderError, match="<subject>"):
        readers.read_generic(tmp_path)


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


def test_icdar_names_take_the_writer_folder(tmp_path):
    touch(tmp_path / "001" / "S-001-G-001_01.png")
    touch(tmp_path / "001" / "S-001-F-0119001_01.png")
    touch(tmp_path / "030" / "S-030-F-01_0109030.png")
    touch(tmp_path / "030" / "readme.png")  # not an ICDAR name: ignored
    s = readers.read_icdar(tmp_path)
    assert [(x.subject, x.kind) for x in s] == [("001", FORGED), ("001", GENUINE), ("030", FORGED)]


def test_icdar_name_in_the_wrong_folder_is_an_error(tmp_path):
    touch(tmp_path / "002" / "S-001-G-001_01.png")
    with pytest.raises(ReaderError, match="folder 002"):
        readers.read_icdar(tmp_path)


def test_combine_prefixes_every_collection(tmp_path):
    from twin_train.data import combine

    touch(tmp_path / "bhsig" / "001" / "B-S-1-G-01.png")
    touch(tmp_path / "icdar" / "013" / "S-013-F-0101013_01.png")
    touch(tmp_path / "synth" / "w0001" / "w0001-G-01.png")
    touch(tmp_path / "synth" / "w0001" / "w0001-F-01.png")
    s = combine(bhsig=tmp_path / "bhsig", icdar=tmp_path / "icdar", synth=tmp_path / "synth")
    assert sorted((x.subject, x.kind) for x in s) == [
        ("bhsig:001", GENUINE), ("icdar:013", FORGED), ("synth:w0001", FORGED), ("synth:w0001", GENUINE)]
