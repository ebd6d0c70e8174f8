"""twin_client pieces that need no server: samples, enums, errors, argument checks."""

from __future__ import annotations

import io
import subprocess
import sys
from datetime import datetime, timezone

import grpc
import numpy as np
import pytest
from PIL import Image

import twin_client
from twin_client import (
    Aggregation,
    Client,
    InvalidArgumentError,
    JobStatus,
    KeyScope,
    Metric,
    NotFoundError,
    Text,
    TwinError,
)
from twin_client._images import encode_png, to_proto
from twin_client._proto import common_pb2
from twin_client.types import Job, asdict, job_from


def _png(mode="L", size=(40, 20), color=128) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def test_samples_of_every_kind(tmp_path):
    data = _png()
    path = tmp_path / "scan.png"
    path.write_bytes(data)
    assert to_proto(str(path)).data == data
    assert to_proto(path).source == "scan.png"
    assert to_proto(path, source="other").source == "other"
    assert to_proto(data).data == data and to_proto(data).source == ""
    assert to_proto(bytearray(data)).data == data
    assert to_proto(memoryview(data)).data == data
    text = to_proto(Text("a sentence", source="s1"))
    assert text.WhichOneof("content") == "text" and text.text == "a sentence" and text.source == "s1"
    # PIL and numpy become PNGs of exactly the same pixels.
    pil = Image.open(io.BytesIO(data))
    for sample in (pil, np.asarray(pil)):
        decoded = Image.open(io.BytesIO(to_proto(sample).data))
        assert decoded.format == "PNG"
        assert np.array_equal(np.asarray(decoded), np.asarray(pil))


def test_numpy_shapes_and_dtypes():
    rgb = np.zeros((10, 12, 3), dtype=np.uint8)
    rgb[..., 0] = 255
    decoded = Image.open(io.BytesIO(encode_png(rgb)))
    assert decoded.mode == "RGB" and decoded.size == (12, 10)
    assert np.array_equal(np.asarray(decoded), rgb)
    assert Image.open(io.BytesIO(encode_png(np.zeros((5, 6, 1), np.uint8)))).mode == "L"
    assert Image.open(io.BytesIO(encode_png(np.zeros((5, 6, 4), np.uint8)))).mode == "RGBA"
    with pytest.raises(TypeError, match="uint8"):
        encode_png(np.zeros((5, 6), dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        encode_png(np.zeros((5, 6, 2), dtype=np.uint8))
    with pytest.raises(ValueError, match="shape"):
        encode_png(np.zeros((5,), dtype=np.uint8))


def test_pil_modes_png_cannot_hold_are_converted():
    image = Image.new("F", (8, 8), 3.0)
    decoded = Image.open(io.BytesIO(encode_png(image)))
    assert decoded.mode == "RGB"
    cmyk = Image.new("CMYK", (8, 8))
    assert Image.open(io.BytesIO(encode_png(cmyk))).mode == "RGB"


def test_unsupported_samples_say_what_to_pass(tmp_path):
    with pytest.raises(TypeError, match="Text"):
        to_proto(12345)
    with pytest.raises(FileNotFoundError):
        to_proto(tmp_path / "missing.png")
    with pytest.raises(ValueError, match="directory"):
        to_proto(tmp_path)


def test_pil_and_numpy_are_imported_only_when_used(tmp_path):
    path = tmp_path / "x.png"
    path.write_bytes(_png())
    code = (
        "import sys, twin_client\n"
        "from twin_client._images import to_proto\n"
        f"to_proto(b'bytes'); to_proto({str(path)!r}); to_proto(twin_client.Text('t'))\n"
        "twin_client.Client('127.0.0.1:1').close()\n"
        "assert 'PIL' not in sys.modules, 'PIL imported'\n"
        "assert 'numpy' not in sys.modules, 'numpy imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_enums_take_strings_members_and_proto_names():
    assert Metric.parse("cosine") is Metric.COSINE
    assert Metric.parse("METRIC_SQUARED_L2") is Metric.SQUARED_L2
    assert Metric.parse(" L1 ") is Metric.L1
    assert Metric.parse(Metric.DOT) is Metric.DOT
    assert Metric.parse(5) is Metric.COSINE
    assert Metric.COSINE == "cosine" and str(Metric.COSINE) == "cosine"
    assert Metric.COSINE.number == common_pb2.METRIC_COSINE
    assert Metric.LEARNED.proto_name == "METRIC_LEARNED"
    assert Metric.from_number(0) is None
    assert Aggregation.parse("k_of_n").number == 3
    assert Aggregation.parse("ADAPTED").number == 4
    assert KeyScope.parse("admin").number == 3
    assert JobStatus.from_number(2) is JobStatus.DONE
    with pytest.raises(ValueError, match="'best', 'mean', 'k_of_n', 'adapted'"):
        Aggregation.parse("median")


def test_results_are_frozen_dataclasses_and_convert_to_dicts():
    from twin_client._proto import enrollment_pb2

    pb = enrollment_pb2.Job(job_id="j", status=enrollment_pb2.JOB_STATUS_DONE, attempts=1)
    pb.enqueued_at.FromDatetime(datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc))
    job = job_from(pb)
    assert isinstance(job, Job) and job.status is JobStatus.DONE and job.finished
    assert job.enqueued_at == datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    assert job.updated_at is None
    with pytest.raises(AttributeError):
        job.status = JobStatus.FAILED  # type: ignore[misc]
    plain = asdict(job)
    assert plain["status"] == "done" and plain["enqueued_at"].startswith("2024-05-01T12:00")


class _FakeRpcError(grpc.RpcError):
    def __init__(self, code, details, trailing=()):
        self._code, self._details, self._trailing = code, details, trailing

    def code(self):
        return self._code

    def details(self):
        return self._details

    def trailing_metadata(self):
        return self._trailing

    def initial_metadata(self):
        return ()


def test_errors_carry_code_message_and_request_id():
    error = TwinError.from_rpc_error(
        _FakeRpcError(grpc.StatusCode.INVALID_ARGUMENT, "a: not an image", (("x-request-id", "r-1"),))
    )
    assert isinstance(error, InvalidArgumentError) and isinstance(error, TwinError)
    assert (error.code, error.message, error.request_id) == ("INVALID_ARGUMENT", "a: not an image", "r-1")
    assert str(error) == "INVALID_ARGUMENT: a: not an image (request r-1)"
    assert isinstance(TwinError.from_rpc_error(_FakeRpcError(grpc.StatusCode.NOT_FOUND, "x")), NotFoundError)
    other = TwinError.from_rpc_error(_FakeRpcError(grpc.StatusCode.DATA_LOSS, "lost"))
    assert type(other) is TwinError and other.code == "DATA_LOSS" and other.request_id is None


def test_arguments_are_checked_before_anything_is_sent():
    with Client("127.0.0.1:1", timeout=0.5) as client:
        with pytest.raises(ValueError, match="exactly one"):
            client.search()
        with pytest.raises(ValueError, match="exactly one"):
            client.search(b"x", point_id="p")
        with pytest.raises(ValueError, match="not both"):
            client.verify(b"a", b"b", target_far=0.01, threshold=0.5)
        with pytest.raises(ValueError, match="is not a Metric"):
            client.verify(b"a", b"b", metric="hamming")
        with pytest.raises(ValueError, match="disagree"):
            client.verify_subject("s", b"p", aggregation="k_of_n:2", k=3)
        with pytest.raises(ValueError, match="not a directory"):
            client.enroll_folder("/nonexistent/folder")


def test_an_unreachable_gateway_is_unavailable():
    with Client("127.0.0.1:1", timeout=2) as client:
        with pytest.raises(TwinError) as info:
            client.list_models()
        assert info.value.code in ("UNAVAILABLE", "DEADLINE_EXCEEDED")
        with pytest.raises(TwinError, match="UNAVAILABLE"):
            client.wait_ready(timeout=0.5)


def test_public_api_is_exported():
    for name in twin_client.__all__:
        assert hasattr(twin_client, name), name
    assert twin_client.__version__
