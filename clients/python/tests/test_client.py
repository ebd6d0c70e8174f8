"""Every RPC of twin.v1 through twin_client.Client, against the real `twin serve` of the
`twin_server` fixture (signature-v2 as the default model, and face-v1)."""

from __future__ import annotations

import hashlib
import io
import time
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from PIL import Image

from _client_helpers import forgery, genuine, uid
from twin_client import (
    Aggregation,
    Audit,
    Client,
    InvalidArgumentError,
    JobStatus,
    KeyScope,
    Metric,
    NotFoundError,
    PermissionDeniedError,
    SearchResult,
    Text,
    TwinError,
    UnauthenticatedError,
    VerifyResult,
)

DEFAULT = "signature-v2"


@pytest.fixture(scope="module")
def client(twin_server):
    with Client(twin_server.addr, twin_server.keys["write"]) as c:
        yield c


@pytest.fixture(scope="module")
def read_client(twin_server):
    with Client(twin_server.addr, twin_server.keys["read"]) as c:
        yield c


@pytest.fixture(scope="module")
def admin_client(twin_server):
    with Client(twin_server.addr, twin_server.keys["admin"]) as c:
        yield c


@pytest.fixture
def images(twin_server):
    return twin_server.images


def _eventually(check, seconds=10.0, interval=0.1):
    """Retries `check` until it returns a truthy value or raises no AssertionError."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            value = check()
            if value:
                return value
        except (AssertionError, TwinError):
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"{check} never held")
        time.sleep(interval)


# --- Models ----------------------------------------------------------------------------


def test_list_models(client):
    models = client.list_models()
    assert models.default_model == DEFAULT
    assert {"signature-v2", "face-v1"} <= set(models.names)
    signature = models[DEFAULT]
    assert signature.input_kind == "image" and signature.trained
    assert signature.native_metric is Metric.COSINE
    assert signature.embedding_size == 128 and signature.l2_normalized
    assert signature.input_shape[1:] == [1, 96, 320]
    points = [p for p in signature.operating_points if p.metric is Metric.COSINE]
    assert {p.target_far for p in points} >= {0.01}
    assert signature.default_operating_point
    assert signature.subject_operating_points and signature.subject_operating_points[0].aggregation
    assert signature.execution_provider in ("cpu", "cuda")
    assert models["face-v1"].native_metric is Metric.L2
    assert models[signature.id] is signature


def test_get_model_by_name_id_and_default(client):
    by_name = client.get_model("face-v1")
    assert by_name.name == "face-v1" and len(by_name.id) == 64
    assert client.get_model(by_name.id) == by_name
    assert client.get_model().name == DEFAULT
    with pytest.raises(NotFoundError) as info:
        client.get_model("no-such-model")
    assert info.value.code == "NOT_FOUND" and "no-such-model" in info.value.message


def test_get_model_card(client):
    # Needs the gateway's Models.GetModelCard.
    card = client.get_model_card("face-v1")
    assert card.model == "face-v1"
    assert card.markdown.strip(), "models/face-v1 ships a MODEL_CARD.md"
    default = client.get_model_card()
    assert default.model == DEFAULT and default.markdown.strip()
    for svg in (default.roc_svg, default.det_svg):
        assert svg == "" or "<svg" in svg
    with pytest.raises(NotFoundError):
        client.get_model_card("no-such-model")


# --- Verification ----------------------------------------------------------------------


def test_verify_decides_with_an_audit_record(client, images):
    a = genuine(images, 1, 1)
    same = client.verify(a, a)
    assert isinstance(same, VerifyResult) and same.match
    assert same.score == pytest.approx(1.0, abs=1e-4)
    audit = same.audit
    assert isinstance(audit, Audit)
    assert audit.model_name.startswith(DEFAULT) and len(audit.model_id) == 64
    assert audit.metric is Metric.COSINE and audit.score == same.score
    assert audit.operating_point and audit.target_far == pytest.approx(0.01)
    assert audit.request_id
    assert abs(audit.decided_at - datetime.now(timezone.utc)) < timedelta(minutes=5)
    assert same.warnings == []

    other = client.verify(a, genuine(images, 1, 2))
    forged = client.verify(a, forgery(images, 1, 1))
    for result in (other, forged):
        assert -1.0 - 1e-6 <= result.score <= 1.0 + 1e-6
        assert result.match == (result.score >= result.audit.threshold)


def test_verify_policies_and_metrics(client, images):
    a, b = genuine(images, 2, 1), genuine(images, 3, 1)
    low = client.verify(a, b, threshold=-10.0)
    assert low.match and low.audit.operating_point == "explicit" and low.audit.threshold == -10.0
    high = client.verify(a, b, threshold=10.0)
    assert not high.match
    assert high.score == pytest.approx(low.score)
    far = client.verify(a, b, target_far=0.1)
    assert far.audit.target_far == pytest.approx(0.1) and "10" in far.audit.operating_point
    l2 = client.verify(a, b, metric="l2", threshold=-100.0)
    assert l2.audit.metric is Metric.L2 and l2.score <= 0
    rbf = client.verify(a, b, metric=Metric.RBF, rbf_sigma=2.0, threshold=0.0)
    assert rbf.audit.metric is Metric.RBF and 0 < rbf.score <= 1
    with pytest.raises(InvalidArgumentError) as info:
        client.verify(a, b, target_far=0.123)
    assert "0.123" in info.value.message or "operating point" in info.value.message


def test_a_bad_image_is_invalid_argument_with_a_message(client, images):
    with pytest.raises(InvalidArgumentError) as info:
        client.verify(b"definitely not an image", genuine(images, 1, 1))
    error = info.value
    assert error.code == "INVALID_ARGUMENT"
    assert error.message.startswith("a:"), error.message
    truncated = genuine(images, 1, 1).read_bytes()[:200]
    with pytest.raises(InvalidArgumentError) as info:
        client.enroll(uid("bad"), truncated)
    assert info.value.message and "image" in info.value.message


def test_a_text_for_an_image_model_is_refused(client):
    with pytest.raises(InvalidArgumentError) as info:
        client.embed(Text("a sentence for a text model"))
    assert "text" in info.value.message.lower()


# --- Similarity: embeddings from every kind of image --------------------------------


def test_path_bytes_pil_and_numpy_embed_alike(client, images):
    path = genuine(images, 2, 2)
    data = path.read_bytes()
    pil = Image.open(path)
    pil.load()
    array = np.asarray(pil)
    embeddings = [client.embed(sample) for sample in (path, str(path), data, pil, array)]
    by_path = embeddings[0]
    assert len(by_path.vector) == 128 and len(by_path) == 128
    assert by_path.image_sha256 == hashlib.sha256(data).hexdigest()
    assert by_path.model_id == client.get_model().id
    for other in embeddings[1:]:
        np.testing.assert_allclose(other.vector, by_path.vector, atol=1e-5)
    # An RGB array of the same grey pixels embeds alike too (the model reads one channel).
    rgb = np.repeat(array[:, :, None], 3, axis=2) if array.ndim == 2 else array
    np.testing.assert_allclose(client.embed(rgb).vector, by_path.vector, atol=1e-3)
    assert np.linalg.norm(by_path.vector) == pytest.approx(1.0, abs=1e-4)


# --- Enrollment, subjects, VerifySubject -----------------------------------------------


def test_enroll_get_subject_verify_subject_delete(client, images):
    subject = uid("life")
    enrolled = [
        client.enroll(subject, genuine(images, 1, n), labels={"session": "a", "n": str(n)}, wait=True)
        for n in (1, 2, 3)
    ]
    for result in enrolled:
        assert result.job.status is JobStatus.DONE and result.job.subject_id == subject
        assert result.job.point_id and result.job.job_id
    got = client.get_subject(subject)
    assert got.subject_id == subject and len(got) == 3
    assert got.model_id == client.get_model().id
    assert {r.source for r in got.references} == {f"w0001-G-0{n}.png" for n in (1, 2, 3)}
    assert {r.point_id for r in got.references} == {e.job.point_id for e in enrolled}
    for reference in got.references:
        assert reference.labels["session"] == "a"
        assert reference.enrolled_at is not None and reference.thumbnail == b""
        assert len(reference.image_sha256) == 64

    probe = genuine(images, 1, 4)
    best = client.verify_subject(subject, probe)
    assert best.references == 3 and len(best.per_reference) == 3
    scores = [r.score for r in best.per_reference]
    assert scores == sorted(scores, reverse=True)
    assert best.score == pytest.approx(scores[0])
    assert best.audit.matched_point_id == best.per_reference[0].point_id
    assert {r.source for r in best.per_reference} == {r.source for r in got.references}

    mean = client.verify_subject(subject, probe, aggregation="mean", threshold=0.0)
    assert mean.score == pytest.approx(sum(scores) / 3, abs=1e-5)
    kth = client.verify_subject(subject, probe, aggregation="k_of_n:2", threshold=0.0)
    assert kth.score == pytest.approx(scores[1], abs=1e-6)
    assert client.verify_subject(subject, probe, aggregation=Aggregation.K_OF_N, k=2, threshold=0.0).score == kth.score
    adapted = client.verify_subject(subject, probe, aggregation="adapted", threshold=-10.0)
    assert adapted.references == 3
    capped = client.verify_subject(subject, probe, max_references=2, threshold=0.0)
    assert capped.references == 2
    l2 = client.verify_subject(subject, probe, metric="l2", threshold=-100.0)
    assert l2.audit.metric is Metric.L2 and l2.match
    with pytest.raises(InvalidArgumentError):
        client.verify_subject(subject, probe, aggregation="k_of_n", k=5, threshold=0.0)

    assert client.delete_subject(subject) == 3
    with pytest.raises(NotFoundError):
        client.get_subject(subject)
    with pytest.raises(NotFoundError):
        client.verify_subject(subject, probe)
    assert client.delete_subject(subject) == 0


def test_get_subject_thumbnails(client, images):
    # Needs the gateway's GetSubjectRequest.thumbnails / Reference.thumbnail.
    subject = uid("thumb")
    client.enroll(subject, genuine(images, 3, 1), wait=True)
    plain = client.get_subject(subject)
    assert plain.references[0].thumbnail == b""
    with_thumbs = client.get_subject(subject, thumbnails=True)
    thumbnail = with_thumbs.references[0].thumbnail
    assert thumbnail.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(thumbnail))
    assert max(image.size) <= 160
    client.delete_subject(subject)


def test_enroll_text_source_and_jobs(client, images):
    subject = uid("job")
    queued = client.enroll(subject, genuine(images, 4, 1).read_bytes(), source="scan-17")
    assert queued.job.status in (JobStatus.QUEUED, JobStatus.DONE)
    job = client.get_job(queued.job.job_id)
    assert job.job_id == queued.job.job_id and job.point_id == queued.job.point_id
    assert job.subject_id == subject and job.enqueued_at is not None
    (done,) = client.wait_for_jobs([job.job_id], timeout=60)
    assert done.status is JobStatus.DONE and done.finished and done.attempts >= 1
    assert client.get_subject(subject).references[0].source == "scan-17"
    with pytest.raises(NotFoundError):
        client.get_job("00000000-0000-4000-8000-000000000000")
    # The same image again is the same point.
    again = client.enroll(subject, genuine(images, 4, 1).read_bytes(), wait=True)
    assert again.job.point_id == job.point_id
    assert len(client.get_subject(subject)) == 1
    client.delete_subject(subject)


# --- Search ----------------------------------------------------------------------------


def test_search_by_image_vector_and_point(client, images):
    a, b = uid("sa"), uid("sb")
    for n in (1, 2):
        client.enroll(a, genuine(images, 2, n), labels={"side": "a"}, wait=True)
        client.enroll(b, genuine(images, 3, n), labels={"side": "b"}, wait=True)
    mine = [a, b]
    probe = genuine(images, 2, 3)

    found = client.search(probe, subject_ids=mine, threshold=-10.0)
    assert isinstance(found, SearchResult) and not found.unknown
    assert len(found.hits) == 4 and {h.subject_id for h in found.hits} == set(mine)
    assert [h.score for h in found.hits] == sorted((h.score for h in found.hits), reverse=True)
    assert found.best is found.hits[0] and found.audit.score == pytest.approx(found.best.score)
    assert found.audit.threshold == -10.0 and found.audit.metric is Metric.COSINE
    assert found.best.labels["side"] in ("a", "b") and found.best.source.endswith(".png")

    assert len(client.search(probe, subject_ids=mine, top_k=1, threshold=-10.0).hits) == 1
    grouped = client.search(probe, subject_ids=mine, group_by_subject=True, threshold=-10.0)
    assert sorted(h.subject_id for h in grouped.hits) == sorted(mine)
    labelled = client.search(probe, subject_ids=mine, labels={"side": "b"}, threshold=-10.0)
    assert {h.subject_id for h in labelled.hits} == {b}

    vector = client.embed(probe).vector
    by_vector = client.search(vector=vector, subject_ids=mine, threshold=-10.0)
    assert [h.point_id for h in by_vector.hits] == [h.point_id for h in found.hits]
    by_numpy = client.search(vector=np.asarray(vector), subject_ids=mine, threshold=-10.0)
    assert by_numpy.best.point_id == found.best.point_id

    point = found.hits[-1].point_id
    by_point = client.search(point_id=point, subject_ids=mine, threshold=-10.0)
    assert by_point.best.point_id == point and by_point.best.score == pytest.approx(1.0, abs=1e-4)

    nobody = client.search(probe, subject_ids=mine, threshold=10.0)
    assert nobody.unknown and nobody.hits == [] and nobody.best is None
    at_far = client.search(probe, subject_ids=mine, target_far=0.1)
    assert at_far.audit.target_far == pytest.approx(0.1)

    with pytest.raises(InvalidArgumentError):
        client.search(probe, top_k=1001)
    with pytest.raises(InvalidArgumentError):
        client.search(vector=[0.1, 0.2])
    with pytest.raises(NotFoundError):
        client.search(point_id="00000000-0000-4000-8000-000000000000")
    for subject in mine:
        client.delete_subject(subject)


# --- AuditTrail ------------------------------------------------------------------------


def test_query_audit(client, read_client, images):
    subject = uid("audit")
    client.enroll(subject, genuine(images, 4, 2), wait=True)
    probe = genuine(images, 4, 3)
    decided = client.verify_subject(subject, probe)
    request_id = decided.audit.request_id

    entries = _eventually(lambda: client.query_audit(subject_id=subject))
    entry = entries[0]
    assert entry.method == "VerifySubject" and entry.subject_id == subject
    assert entry.match == decided.match and entry.key_id.startswith("key:")
    assert entry.image_sha256 == [hashlib.sha256(probe.read_bytes()).hexdigest()]
    assert entry.audit.request_id == request_id and entry.audit.score == pytest.approx(decided.score)
    assert entry.audit.metric is Metric.COSINE and entry.tenant == ""

    (by_id,) = client.query_audit(request_id=request_id)
    assert by_id.subject_id == subject
    assert read_client.query_audit(request_id=request_id)[0].subject_id == subject
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    assert client.query_audit(subject_id=subject, since=later) == []
    assert client.query_audit(subject_id=subject, until=datetime(2000, 1, 1)) == []
    assert len(client.query_audit(subject_id=subject, since=time.time() - 3600)) >= 1
    assert len(client.query_audit(limit=1)) == 1
    with pytest.raises(InvalidArgumentError):
        client.query_audit(limit=1001)
    with pytest.raises(PermissionDeniedError):
        read_client.query_audit(tenant="someone-else")
    client.delete_subject(subject)


# --- ApiKeys and authentication -----------------------------------------------------------


def test_api_keys_list_create_revoke(admin_client, client, twin_server):
    keys = admin_client.list_keys()
    by_name = {k.name: k for k in keys}
    for scope in ("read", "write", "admin"):
        key = by_name[f"{scope}-test"]
        assert key.scope is KeyScope.parse(scope) and key.key_id.startswith("key:")

    name = uid("key")
    created = admin_client.create_key("read", name=name)
    assert created.secret and created.key.scope is KeyScope.READ and created.key.name == name
    with Client(twin_server.addr, created.secret) as fresh:
        assert _eventually(lambda: fresh.list_models().default_model == DEFAULT)
        assert created.key.key_id in {k.key_id for k in admin_client.list_keys()}
        assert admin_client.revoke_key(created.key.key_id) == 1

        def refused():
            with pytest.raises(UnauthenticatedError):
                fresh.list_models()
            return True

        _eventually(refused)
    with pytest.raises(NotFoundError):
        admin_client.revoke_key(created.key.key_id)

    tenant_key = admin_client.create_key(KeyScope.WRITE, tenant="pyc-tenant", name=uid("tkey"))
    assert tenant_key.key.tenant == "pyc-tenant" and tenant_key.key.scope is KeyScope.WRITE
    assert admin_client.revoke_key(tenant_key.key.key_id) == 1

    with pytest.raises(PermissionDeniedError):
        client.list_keys()
    with pytest.raises(PermissionDeniedError):
        client.create_key("admin")
    with pytest.raises(InvalidArgumentError):
        admin_client.create_key("read", tenant="not a valid tenant!")


def test_a_read_key_cannot_enroll(read_client, images):
    with pytest.raises(PermissionDeniedError) as info:
        read_client.enroll(uid("ro"), genuine(images, 1, 1))
    assert info.value.code == "PERMISSION_DENIED"
    assert "read" in info.value.message and "write" in info.value.message
    with pytest.raises(PermissionDeniedError):
        read_client.delete_subject(uid("ro"))
    # Reading is fine.
    assert read_client.get_model().name == DEFAULT


def test_no_key_or_a_wrong_key_is_unauthenticated(twin_server, images):
    with Client(twin_server.addr) as anonymous:
        with pytest.raises(UnauthenticatedError) as info:
            anonymous.verify(genuine(images, 1, 1), genuine(images, 1, 2))
        assert info.value.code == "UNAUTHENTICATED" and "authorization" in info.value.message
    with Client(twin_server.addr, "not-a-key") as wrong:
        with pytest.raises(UnauthenticatedError, match="invalid api key"):
            wrong.list_models()


def test_errors_name_the_request(client):
    with pytest.raises(NotFoundError) as info:
        client.get_subject(uid("nobody"))
    assert info.value.request_id
    assert info.value.request_id in str(info.value)
