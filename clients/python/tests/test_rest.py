"""The REST/JSON edge driven with an ordinary HTTP client (requests) against the real
`twin serve`: every RPC, auth refused, a bad image, multipart uploads, and the served
OpenAPI document checked by a validator."""

from __future__ import annotations

import base64
import time
import uuid

import pytest
import requests
from openapi_spec_validator import validate

EVERY_RPC = {
    "verify", "verify-subject", "search", "embed", "enroll", "enqueue-batch", "get-job",
    "delete-subject", "get-subject", "list-models", "get-model", "get-model-card",
    "query-audit", "list-keys", "create-key", "revoke-key",
}


def b64(path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


class Rest:
    def __init__(self, server, scope="write"):
        self.url = server.http_url
        self.key = server.keys[scope] if scope else None

    def call(self, method: str, body=None, *, files=None, data=None, key=...):
        key = self.key if key is ... else key
        headers = {"authorization": f"Bearer {key}"} if key else {}
        if files is not None or data is not None:
            return requests.post(f"{self.url}/v1/{method}", files=files, data=data, headers=headers, timeout=60)
        return requests.post(f"{self.url}/v1/{method}", json=body or {}, headers=headers, timeout=60)

    def ok(self, method: str, body=None, **kwargs) -> dict:
        response = self.call(method, body, **kwargs)
        assert response.status_code == 200, (method, response.status_code, response.text)
        assert response.headers["content-type"] == "application/json"
        assert response.headers.get("x-request-id")
        return response.json()


@pytest.fixture(scope="module")
def rest(twin_server):
    return Rest(twin_server)


@pytest.fixture(scope="module")
def enrolled(twin_server, rest):
    """A subject with four genuine references enrolled over REST (one by multipart)."""
    subject = f"rest-{uuid.uuid4().hex[:8]}"
    writer = twin_server.images / "w0002"
    items = [
        {"clientRef": f"g{i}", "subjectId": subject, "image": {"data": b64(writer / f"w0002-G-0{i}.png"), "source": f"w0002-G-0{i}.png"}}
        for i in (1, 2, 3)
    ]
    batch = rest.ok("enqueue-batch", {"items": items})
    assert batch["accepted"] == "3" and "rejected" not in batch, batch
    jobs = [r["jobId"] for r in batch["results"]]
    with open(writer / "w0002-G-04.png", "rb") as f:
        one = rest.ok("enroll", files={"image": ("w0002-G-04.png", f, "image/png")},
                      data={"subjectId": subject, "wait": "true"})
    assert one["job"]["status"] == "JOB_STATUS_DONE", one
    deadline = time.monotonic() + 60
    for job_id in jobs:
        while True:
            job = rest.ok("get-job", {"jobId": job_id})
            if job["status"] == "JOB_STATUS_DONE":
                break
            assert job["status"] == "JOB_STATUS_QUEUED", job
            assert time.monotonic() < deadline, job
            time.sleep(0.2)
    return subject, writer


def test_every_rpc_is_in_the_served_openapi_document_and_it_validates(twin_server):
    response = requests.get(f"{twin_server.http_url}/openapi.json", timeout=30)
    assert response.status_code == 200
    document = response.json()
    validate(document)  # raises on an invalid OpenAPI 3 document
    assert {p.removeprefix("/v1/") for p in document["paths"]} == EVERY_RPC
    schema = document["components"]["schemas"]["VerifySubjectRequest"]["properties"]
    assert "subjectId" in schema and "probe" in schema


def test_models_and_card(rest):
    models = rest.ok("list-models")
    names = [m["name"] for m in models["models"]]
    assert models["defaultModel"] == "signature-v2" and "face-v1" in names
    model = rest.ok("get-model", {"model": "face-v1"})
    assert model["name"] == "face-v1" and model["embeddingSize"] == 128
    card = rest.ok("get-model-card", {"model": "signature-v2"})
    assert card["model"] == "signature-v2" and "signature-v2" in card["markdown"]
    assert rest.call("get-model", {"model": "no-such-model"}).status_code == 404


def test_verify_embed_and_search(twin_server, rest, enrolled):
    subject, writer = enrolled
    genuine = {"data": b64(writer / "w0002-G-05.png"), "source": "w0002-G-05.png"}
    pair = rest.ok("verify", {"a": {"data": b64(writer / "w0002-G-01.png")}, "b": genuine})
    assert isinstance(pair["score"], float) and pair["audit"]["operatingPoint"]
    against = rest.ok("verify-subject", {"subjectId": subject, "probe": genuine, "aggregation": "AGGREGATION_BEST"})
    # 4 references: the decision runs at the calibrated "best of 3" point, on the 3 most recent.
    assert against["references"] == 3 and len(against["perReference"]) == 3, against
    assert against["match"] is True, against
    assert against["audit"]["operatingPoint"].endswith("best of 3"), against["audit"]
    with open(writer.parent / "w0002" / "w0002-F-01.png", "rb") as f:
        forgery = rest.ok("verify-subject", files={"probe": ("forgery.png", f, "image/png")},
                          data={"subjectId": subject})
    assert forgery["score"] < against["score"]
    embedded = rest.ok("embed", {"image": genuine})
    assert len(embedded["vector"]) == 128 and len(embedded["imageSha256"]) == 64
    # Other tests of the session enrol the same images under other subjects: look in the top 5.
    found = rest.ok("search", {"image": genuine, "topK": 5, "groupBySubject": True})
    assert subject in [h["subjectId"] for h in found["hits"]], found
    by_vector = rest.ok("search", {"vector": {"values": embedded["vector"]}, "topK": 5, "groupBySubject": True})
    assert subject in [h["subjectId"] for h in by_vector["hits"]], by_vector


def test_subject_thumbnails_and_delete(rest, enrolled):
    subject, _ = enrolled
    plain = rest.ok("get-subject", {"subjectId": subject})
    assert len(plain["references"]) == 4
    assert all("thumbnail" not in r for r in plain["references"])
    shown = rest.ok("get-subject", {"subjectId": subject, "thumbnails": True})
    for reference in shown["references"]:
        png = base64.b64decode(reference["thumbnail"])
        assert png.startswith(b"\x89PNG\r\n\x1a\n"), reference["source"]
    other = f"{subject}-gone"
    rest.ok("enroll", {"subjectId": other, "image": {"data": b64(enrolled[1] / "w0002-G-01.png")}, "wait": True})
    assert rest.ok("delete-subject", {"subjectId": other})["deletedPoints"] == "1"
    gone = rest.call("get-subject", {"subjectId": other})
    assert gone.status_code == 404 and gone.json()["code"] == "NOT_FOUND"


def test_audit_and_keys(twin_server, rest, enrolled):
    subject, _ = enrolled
    audit = Rest(twin_server, "read").ok("query-audit", {"subjectId": subject, "limit": 5})
    assert audit["entries"] and all(e["subjectId"] == subject for e in audit["entries"])
    admin = Rest(twin_server, "admin")
    created = admin.ok("create-key", {"scope": "KEY_SCOPE_READ", "name": "rest-test"})
    secret, key_id = created["secret"], created["key"]["keyId"]
    listed = admin.ok("list-keys")
    assert key_id in [k["keyId"] for k in listed["keys"]]
    # The new key works (the key file is reloaded within a second or two).
    deadline = time.monotonic() + 10
    while rest.call("list-models", key=secret).status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert admin.ok("revoke-key", {"keyId": key_id})["revoked"] == 1


def test_auth_is_refused_as_for_grpc(twin_server, rest):
    missing = rest.call("list-models", key=None)
    assert missing.status_code == 401 and missing.json()["code"] == "UNAUTHENTICATED"
    wrong = rest.call("list-models", key="not-a-key-of-this-server")
    assert wrong.status_code == 401
    read = Rest(twin_server, "read")
    refused = read.call("enroll", {"subjectId": "x", "image": {"data": "AAAA"}})
    assert refused.status_code == 403 and refused.json()["code"] == "PERMISSION_DENIED"
    not_admin = rest.call("list-keys")
    assert not_admin.status_code == 403


def test_bad_input_gets_a_clear_error(rest):
    bad_image = rest.call("verify", {"a": {"data": base64.b64encode(b"not an image").decode()}, "b": {"data": "AAAA"}})
    assert bad_image.status_code == 400
    error = bad_image.json()
    assert error["code"] == "INVALID_ARGUMENT" and error["message"].startswith("a:"), error
    assert error["requestId"] == bad_image.headers["x-request-id"]
    unknown_field = rest.call("verify", {"bogus": 1})
    assert unknown_field.status_code == 400 and "unknown field `bogus`" in unknown_field.json()["message"]
    not_json = requests.post(f"{rest.url}/v1/verify", data=b"{", headers={"authorization": f"Bearer {rest.key}", "content-type": "application/json"}, timeout=30)
    assert not_json.status_code == 400 and "not JSON" in not_json.json()["message"]
    no_method = rest.call("no-such-method")
    assert no_method.status_code == 404
    wrong_verb = requests.get(f"{rest.url}/v1/verify", timeout=30)
    assert wrong_verb.status_code == 405
    bad_item = rest.ok("enqueue-batch", {"items": [{"subjectId": "x"}]})
    assert bad_item["rejected"] == "1" and bad_item["results"][0]["reason"]
