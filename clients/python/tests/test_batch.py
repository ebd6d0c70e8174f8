"""Batch enrolment through the client stream: tuples, EnqueueItems, lazy generators,
folders, progress bars and waiting for the jobs."""

from __future__ import annotations

import shutil

import pytest

from _client_helpers import forgery, genuine, uid
from twin_client import BatchResult, Client, EnqueueItem, JobStatus, NotFoundError


@pytest.fixture(scope="module")
def client(twin_server):
    with Client(twin_server.addr, twin_server.keys["write"]) as c:
        yield c


def test_enqueue_batch_with_progress_and_wait(client, twin_server, tmp_path, capfd):
    images = twin_server.images
    a, b = uid("ba"), uid("bb")
    items = [(a, genuine(images, 1, n)) for n in (1, 2, 3)]
    items.append((b, b"this is not an image"))
    items.append((b, tmp_path / "missing.png"))
    items += [(b, genuine(images, 2, n).read_bytes(), {"batch": "yes"}) for n in (1, 2, 3)]

    result = client.enqueue_batch(items, progress=True, wait=True, wait_timeout=120)

    assert isinstance(result, BatchResult)
    assert (result.accepted, result.rejected, result.already_stored) == (6, 2, 0)
    assert not result.ok and len(result.rejected_items) == 2
    assert [r.index for r in result.results] == list(range(8))
    bad, missing = result.results[3], result.results[4]
    assert not bad.accepted and bad.reason and not bad.reason.startswith("client:")
    assert not missing.accepted and missing.reason.startswith("client:") and "missing.png" in missing.reason
    assert missing.client_ref == str(tmp_path / "missing.png")
    assert result.results[0].client_ref == str(genuine(images, 1, 1))
    for item in result.results[:3] + result.results[5:]:
        assert item.accepted and item.job_id and item.point_id
    assert len(result.jobs) == 6 and all(j.status is JobStatus.DONE for j in result.jobs)
    assert [j.job_id for j in result.jobs] == [r.job_id for r in result.results if r.accepted]
    assert result.failed == []

    progress = capfd.readouterr().err
    assert "enrolling" in progress and "8/8" in progress
    assert "embedding" in progress and "6/6" in progress

    assert len(client.get_subject(a)) == 3
    subject_b = client.get_subject(b)
    assert len(subject_b) == 3 and all(r.labels == {"batch": "yes"} for r in subject_b.references)

    # Again: every image is already stored, nothing is queued.
    again = client.enqueue_batch(items[:3], progress=False, wait=True)
    assert (again.accepted, again.already_stored) == (0, 3) and again.ok and again.jobs == []
    assert all(r.already_stored and r.reason for r in again.results)
    for subject in (a, b):
        client.delete_subject(subject)


def test_enqueue_batch_reads_a_generator_lazily(client, twin_server, capfd):
    images = twin_server.images
    subject = uid("gen")
    produced = []

    def items():
        for n in (1, 2, 3, 4):
            produced.append(n)
            yield EnqueueItem(
                subject_id=subject,
                image=genuine(images, 3, n),
                labels={"n": str(n)},
                client_ref=f"ref-{n}",
                source=f"scan-{n}",
            )

    generator = items()
    assert produced == []  # nothing read before the stream runs
    result = client.enqueue_batch(generator, model="signature-v2", labels={"ignored": "x"}, wait=True)
    assert produced == [1, 2, 3, 4]
    assert result.accepted == 4 and result.ok
    assert [r.client_ref for r in result.results] == ["ref-1", "ref-2", "ref-3", "ref-4"]
    # Unknown length: the bar counts without a total.
    progress = capfd.readouterr().err
    assert "enrolling" in progress and "4item" in progress.replace(" ", "")
    references = client.get_subject(subject).references
    assert sorted(r.source for r in references) == ["scan-1", "scan-2", "scan-3", "scan-4"]
    assert {r.labels["n"] for r in references} == {"1", "2", "3", "4"}
    assert all("ignored" not in r.labels for r in references)
    client.delete_subject(subject)


def test_batch_defaults_and_per_item_model(client, twin_server):
    images = twin_server.images
    subject = uid("model")
    result = client.enqueue_batch(
        [
            (subject, genuine(images, 4, 1)),
            EnqueueItem(subject, genuine(images, 4, 2), model="no-such-model"),
        ],
        labels={"origin": "batch"},
        progress=False,
        wait=True,
    )
    ok, wrong = result.results
    assert ok.accepted and not wrong.accepted and "no-such-model" in wrong.reason
    (reference,) = client.get_subject(subject).references
    assert reference.labels == {"origin": "batch"} and reference.source == "w0004-G-01.png"
    client.delete_subject(subject)


def test_a_failing_iterable_aborts_the_batch(client, twin_server):
    images = twin_server.images

    def items():
        yield uid("boom"), genuine(images, 1, 1)
        raise RuntimeError("the source of items broke")

    with pytest.raises(RuntimeError, match="broke"):
        client.enqueue_batch(items(), progress=False)


def test_bad_items_of_the_wrong_shape_are_rejected_locally(client, twin_server):
    result = client.enqueue_batch([("only-one-field",), 42], progress=False)
    assert result.accepted == 0 and result.rejected == 2
    assert all(r.reason.startswith("client:") for r in result.results)


def test_enroll_folder(client, twin_server, tmp_path):
    images = twin_server.images
    a, b = uid("fa"), uid("fb")
    for subject, writer in ((a, 1), (b, 2)):
        folder = tmp_path / subject
        folder.mkdir()
        for n in (1, 2):
            shutil.copy(genuine(images, writer, n), folder)
        shutil.copy(forgery(images, writer, 1), folder)
        (folder / "notes.txt").write_text("not an image")
        (folder / ".hidden.png").write_bytes(b"skipped")
    (tmp_path / "stray.png").write_bytes(b"top-level files are no subject's")

    result = client.enroll_folder(tmp_path, pattern="*-G-*", wait=True, progress=False)
    assert result.accepted == 4 and result.ok
    assert sorted(r.client_ref for r in result.results) == sorted(
        f"{s}/w{w:04d}-G-0{n}.png" for s, w in ((a, 1), (b, 2)) for n in (1, 2)
    )
    assert sorted(r.source for r in client.get_subject(a).references) == ["w0001-G-01.png", "w0001-G-02.png"]

    everything = client.enroll_folder(tmp_path, wait=True, progress=False)
    assert (everything.accepted, everything.already_stored) == (2, 4)
    assert len(client.get_subject(b)) == 3
    for subject in (a, b):
        assert client.delete_subject(subject) == 3
    with pytest.raises(NotFoundError):
        client.get_subject(a)


def test_a_read_key_cannot_stream_a_batch(twin_server):
    from twin_client import PermissionDeniedError

    with Client(twin_server.addr, twin_server.keys["read"]) as reader:
        with pytest.raises(PermissionDeniedError) as info:
            reader.enqueue_batch([(uid("ro"), genuine(twin_server.images, 1, 1))], progress=False)
    assert info.value.code == "PERMISSION_DENIED"
