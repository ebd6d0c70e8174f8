"""`Client`: every RPC of the twin.v1 services as a typed method."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Optional, Union

import grpc

from . import types as t
from ._images import ImageLike, to_proto
from ._proto import (
    audit_pb2,
    audit_pb2_grpc,
    common_pb2,
    enrollment_pb2,
    enrollment_pb2_grpc,
    keys_pb2,
    keys_pb2_grpc,
    models_pb2,
    models_pb2_grpc,
    similarity_pb2,
    similarity_pb2_grpc,
    verification_pb2,
    verification_pb2_grpc,
)
from .errors import DeadlineExceededError, NotFoundError, TwinError

__all__ = ["Client", "IMAGE_EXTENSIONS"]

LabelsLike = Union[Mapping[str, str], Iterable[tuple[str, str]], None]
MetricLike = Union[t.Metric, str, None]

#: File name endings `enroll_folder` takes as images.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")

# A job the gateway has not recorded yet reads as NOT_FOUND for a moment at most.
_NOT_FOUND_GRACE_S = 5.0


def _labels(labels: LabelsLike) -> list[Any]:
    if not labels:
        return []
    pairs = labels.items() if isinstance(labels, Mapping) else labels
    return [common_pb2.Label(key=str(k), value=str(v)) for k, v in pairs]


def _metric(metric: MetricLike) -> int:
    return 0 if metric is None else t.Metric.parse(metric).number


def _policy(target_far: Optional[float], threshold: Optional[float]) -> Optional[Any]:
    if target_far is not None and threshold is not None:
        raise ValueError("give target_far or threshold, not both")
    if target_far is not None:
        return common_pb2.DecisionPolicy(target_far=float(target_far))
    if threshold is not None:
        return common_pb2.DecisionPolicy(explicit_threshold=float(threshold))
    return None


def _timestamp(value: Union[datetime, float, int, None]) -> Optional[Any]:
    from google.protobuf import timestamp_pb2

    if value is None:
        return None
    ts = timestamp_pb2.Timestamp()
    if isinstance(value, datetime):
        ts.FromDatetime(value)  # naive datetimes are taken as UTC
    else:
        ts.FromNanoseconds(int(float(value) * 1e9))
    return ts


def _client_ref_of(raw: Any) -> str:
    if isinstance(raw, t.EnqueueItem):
        return raw.client_ref or (os.fspath(raw.image) if isinstance(raw.image, (str, os.PathLike)) else "")
    if isinstance(raw, (tuple, list)) and len(raw) >= 2 and isinstance(raw[1], (str, os.PathLike)):
        return os.fspath(raw[1])
    return ""


class Client:
    """A connection to a twin gateway (`twin serve`).

        with Client("127.0.0.1:50051", api_key="...") as client:
            result = client.verify("a.png", "b.png")

    addr: host:port of the gateway's gRPC endpoint.
    api_key: sent as `authorization: Bearer <api_key>` on every call (None: no header).
    tls: connect with TLS (system roots, or `ca_cert`); `ca_cert` (a PEM path or bytes)
    implies tls.
    timeout: the default deadline of each call, in seconds (None: no deadline). Each
    method takes `timeout=` to override it for one call.

    Samples (images) are a path, encoded bytes, a PIL image, a numpy uint8 array, or a
    `Text("...")` for a text model. Errors are `TwinError`s (with `.code`).
    """

    def __init__(
        self,
        addr: str = "127.0.0.1:50051",
        api_key: Optional[str] = None,
        *,
        tls: bool = False,
        ca_cert: Union[str, os.PathLike, bytes, None] = None,
        timeout: Optional[float] = 30.0,
        options: Optional[Sequence[tuple[str, Any]]] = None,
    ):
        self.addr = addr
        self.timeout = timeout
        channel_options = [
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.primary_user_agent", "twin-client-python"),
            *(options or ()),
        ]
        if ca_cert is not None or tls:
            roots = None
            if isinstance(ca_cert, (bytes, bytearray)):
                roots = bytes(ca_cert)
            elif ca_cert is not None:
                roots = Path(ca_cert).read_bytes()
            credentials = grpc.ssl_channel_credentials(root_certificates=roots)
            self._channel = grpc.secure_channel(addr, credentials, options=channel_options)
        else:
            self._channel = grpc.insecure_channel(addr, options=channel_options)
        self._metadata: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {api_key}"),) if api_key else ()
        )
        self._verification = verification_pb2_grpc.VerificationStub(self._channel)
        self._similarity = similarity_pb2_grpc.SimilarityStub(self._channel)
        self._enrollment = enrollment_pb2_grpc.EnrollmentStub(self._channel)
        self._models = models_pb2_grpc.ModelsStub(self._channel)
        self._audit = audit_pb2_grpc.AuditTrailStub(self._channel)
        self._keys = keys_pb2_grpc.ApiKeysStub(self._channel)

    # --- plumbing ----------------------------------------------------------------------

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        auth = "with api key" if self._metadata else "without api key"
        return f"Client({self.addr!r}, {auth})"

    def close(self) -> None:
        """Closes the channel; calls after this fail."""
        self._channel.close()

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Blocks until the channel is connected; UnavailableError after `timeout` s."""
        try:
            grpc.channel_ready_future(self._channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            raise TwinError("UNAVAILABLE", f"no gateway answered at {self.addr} within {timeout}s") from None

    def _call(self, method: Any, request: Any, timeout: Optional[float] = None) -> Any:
        deadline = self.timeout if timeout is None else timeout
        try:
            return method(request, timeout=deadline, metadata=self._metadata)
        except grpc.RpcError as error:
            raise TwinError.from_rpc_error(error) from error

    # --- Verification ------------------------------------------------------------------

    def verify(
        self,
        a: ImageLike,
        b: ImageLike,
        *,
        model: Optional[str] = None,
        metric: MetricLike = None,
        target_far: Optional[float] = None,
        threshold: Optional[float] = None,
        rbf_sigma: Optional[float] = None,
        timeout: Optional[float] = None,
    ) -> t.VerifyResult:
        """Are `a` and `b` of the same identity? Threshold: `target_far` (a calibrated
        operating point), `threshold` (explicit, in score units) or the model's default."""
        request = verification_pb2.VerifyRequest(
            a=to_proto(a),
            b=to_proto(b),
            model=model or "",
            metric=_metric(metric),
            policy=_policy(target_far, threshold),
            rbf_sigma=rbf_sigma or 0.0,
        )
        return t.verify_from(self._call(self._verification.Verify, request, timeout))

    def verify_subject(
        self,
        subject_id: str,
        probe: ImageLike,
        *,
        model: Optional[str] = None,
        metric: MetricLike = None,
        target_far: Optional[float] = None,
        threshold: Optional[float] = None,
        aggregation: Union[t.Aggregation, str, None] = None,
        k: Optional[int] = None,
        max_references: Optional[int] = None,
        rbf_sigma: Optional[float] = None,
        timeout: Optional[float] = None,
    ) -> t.SubjectVerifyResult:
        """Is `probe` the enrolled subject? `aggregation`: "best" (default), "mean",
        "k_of_n" (with `k`; "k_of_n:K" is shorthand) or "adapted"."""
        number = 0
        if aggregation is not None:
            if isinstance(aggregation, str) and ":" in aggregation:
                name, _, count = aggregation.partition(":")
                if k is not None and int(count) != k:
                    raise ValueError(f"aggregation {aggregation!r} and k={k} disagree")
                aggregation, k = name, int(count)
            number = t.Aggregation.parse(aggregation).number
        request = verification_pb2.VerifySubjectRequest(
            subject_id=subject_id,
            probe=to_proto(probe),
            model=model or "",
            metric=_metric(metric),
            policy=_policy(target_far, threshold),
            aggregation=number,
            k=k or 0,
            max_references=max_references or 0,
            rbf_sigma=rbf_sigma or 0.0,
        )
        return t.subject_verify_from(self._call(self._verification.VerifySubject, request, timeout))

    # --- Similarity --------------------------------------------------------------------

    def search(
        self,
        query: Optional[ImageLike] = None,
        *,
        vector: Optional[Sequence[float]] = None,
        point_id: Optional[str] = None,
        model: Optional[str] = None,
        top_k: Optional[int] = None,
        subject_ids: Optional[Iterable[str]] = None,
        labels: LabelsLike = None,
        target_far: Optional[float] = None,
        threshold: Optional[float] = None,
        group_by_subject: bool = False,
        timeout: Optional[float] = None,
    ) -> t.SearchResult:
        """The enrolled points nearest to a query: a sample (`query`), a raw `vector`, or
        a stored `point_id` (exactly one). Hits below the threshold are left out; none
        left is `unknown=True`."""
        given = [name for name, v in (("query", query), ("vector", vector), ("point_id", point_id)) if v is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of query, vector, point_id (got {', '.join(given) or 'none'})")
        request = similarity_pb2.SearchRequest(
            model=model or "",
            top_k=top_k or 0,
            subject_ids=list(subject_ids or ()),
            labels=_labels(labels),
            policy=_policy(target_far, threshold),
            group_by_subject=group_by_subject,
        )
        if query is not None:
            request.image.CopyFrom(to_proto(query))
        elif vector is not None:
            request.vector.values.extend(float(x) for x in vector)
        else:
            request.point_id = str(point_id)
        return t.search_from(self._call(self._similarity.Search, request, timeout))

    def embed(self, image: ImageLike, *, model: Optional[str] = None, timeout: Optional[float] = None) -> t.Embedding:
        """The raw embedding of a sample, as the model produces it."""
        request = similarity_pb2.EmbedRequest(image=to_proto(image), model=model or "")
        return t.embedding_from(self._call(self._similarity.Embed, request, timeout))

    # --- Enrollment --------------------------------------------------------------------

    def enroll(
        self,
        subject_id: str,
        image: ImageLike,
        *,
        labels: LabelsLike = None,
        model: Optional[str] = None,
        wait: bool = False,
        source: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> t.EnrollResult:
        """Enrols one sample for a subject. Returns once the job is queued, or with
        `wait=True` once the point is stored (job DONE) or the job failed. `source`
        (stored with the point) defaults to the file name for a path."""
        request = enrollment_pb2.EnrollRequest(
            subject_id=subject_id,
            image=to_proto(image, source),
            labels=_labels(labels),
            model=model or "",
            wait=wait,
        )
        response = self._call(self._enrollment.Enroll, request, timeout)
        return t.EnrollResult(job=t.job_from(response.job), warnings=list(response.warnings))

    def _enqueue_item(self, raw: Any, model: Optional[str], labels: LabelsLike) -> Any:
        if isinstance(raw, t.EnqueueItem):
            item = raw
        elif isinstance(raw, (tuple, list)) and len(raw) in (2, 3):
            item = t.EnqueueItem(raw[0], raw[1], raw[2] if len(raw) == 3 else None)
        else:
            raise TypeError(
                f"a batch item is an EnqueueItem or a (subject_id, image[, labels]) tuple, not {type(raw).__name__}"
            )
        if not isinstance(item.subject_id, str):
            raise TypeError(f"subject_id must be a str, got {type(item.subject_id).__name__}")
        return enrollment_pb2.EnqueueItem(
            client_ref=item.client_ref if item.client_ref is not None else _client_ref_of(item),
            subject_id=item.subject_id,
            image=to_proto(item.image, item.source),
            labels=_labels(item.labels if item.labels is not None else labels),
            model=item.model or model or "",
        )

    def enqueue_batch(
        self,
        items: Iterable[Union[t.EnqueueItem, tuple]],
        *,
        model: Optional[str] = None,
        labels: LabelsLike = None,
        progress: bool = True,
        wait: bool = False,
        poll_interval: float = 0.2,
        wait_timeout: Optional[float] = 600.0,
        stream_timeout: Optional[float] = None,
        desc: str = "enrolling",
    ) -> t.BatchResult:
        """Enrols many samples in one client stream, read lazily from `items`:
        `(subject_id, image)` or `(subject_id, image, labels)` tuples, or `EnqueueItem`s.

        progress: a tqdm bar over the items sent (and, with wait, a second one over the
        jobs embedded). wait: poll GetJob until every accepted job is DONE or FAILED
        (DeadlineExceededError after `wait_timeout` s). `model` and `labels` apply to
        items that name none. stream_timeout: deadline of the stream (None: none).

        A bad item does not stop the batch: its ItemResult says why. An item the client
        cannot even read (a missing file, an unsupported object) is rejected the same
        way, with a reason starting "client:", and is not sent.
        """
        from tqdm.auto import tqdm

        total = len(items) if hasattr(items, "__len__") else None  # type: ignore[arg-type]
        local: dict[int, t.ItemResult] = {}
        sent: list[int] = []  # stream index -> item index
        failure: list[BaseException] = []
        bar = tqdm(total=total, desc=desc, unit="item", disable=not progress, leave=True)
        lock = threading.Lock()

        def stream() -> Iterable[Any]:
            iterator = iter(items)
            index = 0
            while True:
                try:
                    raw = next(iterator)
                except StopIteration:
                    return
                except BaseException as e:  # the caller's iterable failed: abort the call
                    failure.append(e)
                    raise
                try:
                    message = self._enqueue_item(raw, model, labels)
                except Exception as e:  # noqa: BLE001 - reported per item
                    local[index] = t.ItemResult(
                        client_ref=_client_ref_of(raw), index=index, accepted=False, job_id="",
                        point_id="", reason=f"client: {e}", already_stored=False,
                    )
                else:
                    sent.append(index)
                    with lock:
                        bar.update(1)
                    index += 1
                    yield message
                    continue
                with lock:
                    bar.update(1)
                index += 1

        try:
            try:
                response = self._enrollment.EnqueueBatch(stream(), timeout=stream_timeout, metadata=self._metadata)
            except grpc.RpcError as error:
                if failure:
                    raise failure[0] from error
                raise TwinError.from_rpc_error(error) from error
        finally:
            bar.close()

        results: list[t.ItemResult] = list(local.values())
        for result in response.results:
            position = sent[result.index] if result.index < len(sent) else int(result.index)
            results.append(t.item_from(result, position))
        results.sort(key=lambda r: r.index)
        jobs: list[t.Job] = []
        if wait:
            ids = [r.job_id for r in results if r.accepted and r.job_id]
            jobs = self.wait_for_jobs(ids, progress=progress, poll_interval=poll_interval, timeout=wait_timeout)
        return t.BatchResult(
            accepted=response.accepted,
            rejected=response.rejected + len(local),
            already_stored=response.already_stored,
            results=results,
            jobs=jobs,
        )

    def enroll_folder(
        self,
        path: Union[str, os.PathLike],
        *,
        pattern: str = "*",
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
        **kwargs: Any,
    ) -> t.BatchResult:
        """Enrols a folder laid out as `<path>/<subject_id>/<images>` with
        `enqueue_batch` (whose keyword arguments it takes: model, labels, progress, wait...).
        Only files matching the glob `pattern` with one of `extensions` are taken (e.g.
        pattern="*-G-*"); each item's client_ref is its path relative to `path`."""
        root = Path(path)
        if not root.is_dir():
            raise ValueError(f"{root} is not a directory")
        endings = tuple(e.lower() for e in extensions)
        items = [
            t.EnqueueItem(subject_id=subject.name, image=file, client_ref=str(file.relative_to(root)))
            for subject in sorted(root.iterdir())
            if subject.is_dir() and not subject.name.startswith(".")
            for file in sorted(subject.glob(pattern))
            if file.is_file() and not file.name.startswith(".") and file.name.lower().endswith(endings)
        ]
        return self.enqueue_batch(items, **kwargs)

    def get_job(self, job_id: str, *, timeout: Optional[float] = None) -> t.Job:
        """What became of a job (NotFoundError for an unknown id)."""
        return t.job_from(self._call(self._enrollment.GetJob, enrollment_pb2.GetJobRequest(job_id=job_id), timeout))

    def wait_for_jobs(
        self,
        job_ids: Iterable[str],
        *,
        progress: bool = False,
        poll_interval: float = 0.2,
        timeout: Optional[float] = 600.0,
        desc: str = "embedding",
    ) -> list[t.Job]:
        """Polls GetJob until every job is DONE or FAILED; their final states, in the
        order given. DeadlineExceededError when some are still queued after `timeout` s."""
        from tqdm.auto import tqdm

        order = list(dict.fromkeys(job_ids))
        pending = list(order)
        final: dict[str, t.Job] = {}
        start = time.monotonic()
        with tqdm(total=len(order), desc=desc, unit="job", disable=not progress, leave=True) as bar:
            while pending:
                still: list[str] = []
                unfinished_in_a_row = 0
                for job_id in pending:
                    # Jobs finish roughly in order: once several in a row are still
                    # queued, the rest are too; look again after the pause.
                    if unfinished_in_a_row >= 16:
                        still.append(job_id)
                        continue
                    try:
                        job = self.get_job(job_id)
                    except NotFoundError:
                        if time.monotonic() - start > _NOT_FOUND_GRACE_S:
                            raise
                        job = None
                    if job is not None and job.finished:
                        final[job_id] = job
                        bar.update(1)
                        unfinished_in_a_row = 0
                    else:
                        still.append(job_id)
                        unfinished_in_a_row += 1
                pending = still
                if not pending:
                    break
                if timeout is not None and time.monotonic() - start > timeout:
                    raise DeadlineExceededError(
                        message=f"{len(pending)} of {len(order)} jobs still queued after {timeout}s "
                        f"(first: {pending[0]}); poll get_job later"
                    )
                time.sleep(poll_interval)
        return [final[j] for j in order]

    def delete_subject(self, subject_id: str, *, model: Optional[str] = None, timeout: Optional[float] = None) -> int:
        """Deletes every point of a subject under a model; the number deleted (0 for an
        unknown subject)."""
        request = enrollment_pb2.DeleteSubjectRequest(subject_id=subject_id, model=model or "")
        return self._call(self._enrollment.DeleteSubject, request, timeout).deleted_points

    def get_subject(
        self,
        subject_id: str,
        *,
        model: Optional[str] = None,
        thumbnails: bool = False,
        timeout: Optional[float] = None,
    ) -> t.Subject:
        """The subject's enrolled references (NotFoundError when it has none); with
        `thumbnails=True` each Reference.thumbnail holds a small PNG."""
        request = enrollment_pb2.GetSubjectRequest(subject_id=subject_id, model=model or "", thumbnails=thumbnails)
        return t.subject_from(self._call(self._enrollment.GetSubject, request, timeout))

    # --- Models ------------------------------------------------------------------------

    def list_models(self, *, timeout: Optional[float] = None) -> t.ModelList:
        """The served models, and the name of the default one."""
        response = self._call(self._models.ListModels, models_pb2.ListModelsRequest(), timeout)
        return t.ModelList(models=[t.model_from(m) for m in response.models], default_model=response.default_model)

    def get_model(self, model: Optional[str] = None, *, timeout: Optional[float] = None) -> t.Model:
        """A model by name or id (None: the default model)."""
        request = models_pb2.GetModelRequest(model=model or "")
        return t.model_from(self._call(self._models.GetModel, request, timeout))

    def get_model_card(self, model: Optional[str] = None, *, timeout: Optional[float] = None) -> t.ModelCard:
        """The model's card (MODEL_CARD.md) and its ROC and DET plots (SVG)."""
        request = models_pb2.GetModelRequest(model=model or "")
        return t.model_card_from(self._call(self._models.GetModelCard, request, timeout))

    # --- AuditTrail --------------------------------------------------------------------

    def query_audit(
        self,
        *,
        subject_id: Optional[str] = None,
        request_id: Optional[str] = None,
        since: Union[datetime, float, None] = None,
        until: Union[datetime, float, None] = None,
        limit: Optional[int] = None,
        tenant: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> list[t.AuditEntry]:
        """Decisions on record, newest first. Every argument given narrows the answer:
        `since`/`until` (a datetime, naive = UTC, or epoch seconds) are the request's
        from/to; `limit` defaults to 100 on the server (at most 1000); `tenant` is for
        admin keys only."""
        request = audit_pb2.QueryAuditRequest(
            subject_id=subject_id or "",
            request_id=request_id or "",
            limit=limit or 0,
            tenant=tenant or "",
        )
        if since is not None:
            getattr(request, "from").CopyFrom(_timestamp(since))
        if until is not None:
            request.to.CopyFrom(_timestamp(until))
        response = self._call(self._audit.QueryAudit, request, timeout)
        return [t.audit_entry_from(e) for e in response.entries]

    # --- ApiKeys -----------------------------------------------------------------------

    def list_keys(self, *, timeout: Optional[float] = None) -> list[t.ApiKey]:
        """Every api key, without its secret (admin keys only)."""
        response = self._call(self._keys.ListKeys, keys_pb2.ListKeysRequest(), timeout)
        return [t.key_from(k) for k in response.keys]

    def create_key(
        self,
        scope: Union[t.KeyScope, str],
        *,
        tenant: Optional[str] = None,
        name: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> t.CreatedKey:
        """A new random key of `scope` ("read", "write" or "admin"); its secret is in the
        answer only (admin keys only)."""
        request = keys_pb2.CreateKeyRequest(
            scope=t.KeyScope.parse(scope).number, tenant=tenant or "", name=name or ""
        )
        response = self._call(self._keys.CreateKey, request, timeout)
        return t.CreatedKey(key=t.key_from(response.key), secret=response.secret)

    def revoke_key(self, key_id: str, *, timeout: Optional[float] = None) -> int:
        """Revokes a key by its id ("key:..." as list_keys shows it); the number of
        keys-file lines removed (NotFoundError when none held it)."""
        request = keys_pb2.RevokeKeyRequest(key_id=key_id)
        return self._call(self._keys.RevokeKey, request, timeout).revoked
