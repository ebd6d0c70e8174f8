"""What the client sends and gets back: enums as strings, results as frozen dataclasses.

Every result is converted from its protobuf answer, so nothing of the generated stubs
leaks into the API: timestamps become timezone-aware `datetime`s (None when unset),
labels become `dict[str, str]`, enums become the str-valued enums below.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Optional

if TYPE_CHECKING:  # pragma: no cover
    from ._images import ImageLike

__all__ = [
    "Aggregation",
    "ApiKey",
    "Audit",
    "AuditEntry",
    "BatchResult",
    "CreatedKey",
    "Embedding",
    "EnqueueItem",
    "EnrollResult",
    "ItemResult",
    "Job",
    "JobStatus",
    "KeyScope",
    "Metric",
    "Model",
    "ModelCard",
    "ModelList",
    "OperatingPoint",
    "Reference",
    "ReferenceScore",
    "SearchHit",
    "SearchResult",
    "Subject",
    "SubjectOperatingPoint",
    "SubjectVerifyResult",
    "VerifyResult",
    "asdict",
]


class _ProtoEnum(str, enum.Enum):
    """A str enum mirroring a proto enum: `Metric.COSINE == "cosine"`.

    `parse` takes a member, its value ("cosine", any case), the proto name
    ("METRIC_COSINE") or the proto number.
    """

    def __str__(self) -> str:  # "cosine", not "Metric.COSINE"
        return self.value

    @classmethod
    def _prefix(cls) -> str:
        return _PREFIXES[cls.__name__]

    @property
    def proto_name(self) -> str:
        """The proto enum's name, e.g. "METRIC_COSINE"."""
        return f"{self._prefix()}{self.value.upper()}"

    @property
    def number(self) -> int:
        """The proto enum's number."""
        return _proto_enum(type(self)).Value(self.proto_name)

    @classmethod
    def from_number(cls, number: int):
        """The member of a proto enum number; None for UNSPECIFIED (0) or an unknown one
        (JobStatus keeps UNSPECIFIED as a member)."""
        try:
            name = _proto_enum(cls).Name(number)
        except ValueError:
            return None
        try:
            return cls.parse(name)
        except ValueError:
            return None

    @classmethod
    def parse(cls, value: Any):
        if isinstance(value, cls):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            member = cls.from_number(value)
            if member is not None:
                return member
        if isinstance(value, str):
            text = value.strip().lower()
            prefix = cls._prefix().lower()
            if text.startswith(prefix):
                text = text[len(prefix):]
            for member in cls:
                if member.value == text:
                    return member
        choices = ", ".join(repr(m.value) for m in cls)
        raise ValueError(f"{value!r} is not a {cls.__name__}: use one of {choices}")


_PREFIXES = {
    "Metric": "METRIC_",
    "Aggregation": "AGGREGATION_",
    "JobStatus": "JOB_STATUS_",
    "KeyScope": "KEY_SCOPE_",
}


def _proto_enum(cls: type) -> Any:
    from ._proto import common_pb2, enrollment_pb2, keys_pb2, verification_pb2

    return {
        "Metric": common_pb2.Metric,
        "Aggregation": verification_pb2.Aggregation,
        "JobStatus": enrollment_pb2.JobStatus,
        "KeyScope": keys_pb2.KeyScope,
    }[cls.__name__]


class Metric(_ProtoEnum):
    """How two embeddings are compared; every score is higher = more similar.

    Requests take None for the model's native metric."""

    L2 = "l2"
    SQUARED_L2 = "squared_l2"
    L1 = "l1"
    DOT = "dot"
    COSINE = "cosine"
    RBF = "rbf"
    LEARNED = "learned"


class Aggregation(_ProtoEnum):
    """How VerifySubject turns per-reference scores into one ("k_of_n" needs `k`)."""

    BEST = "best"
    MEAN = "mean"
    K_OF_N = "k_of_n"
    ADAPTED = "adapted"


class JobStatus(_ProtoEnum):
    UNSPECIFIED = "unspecified"
    QUEUED = "queued"
    DONE = "done"
    FAILED = "failed"


class KeyScope(_ProtoEnum):
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


# --- requests --------------------------------------------------------------------------


@dataclass(frozen=True)
class EnqueueItem:
    """One item of a batch enrolment (`Client.enqueue_batch`).

    `image` is anything the client takes as a sample (a path, encoded bytes, a PIL image,
    a numpy array, or `Text`). `client_ref` is echoed in the item's result (default: the
    path, for a path); `source` is stored as the point's source (default: the file name,
    for a path); `model` overrides the batch's model for this item.
    """

    subject_id: str
    image: "ImageLike"
    labels: Optional[Mapping[str, str]] = None
    model: Optional[str] = None
    client_ref: Optional[str] = None
    source: Optional[str] = None


# --- results ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Audit:
    """Why a decision came out as it did (every decision answer carries one)."""

    model_id: str
    model_name: str
    metric: Optional[Metric]
    score: float
    threshold: float
    operating_point: str
    target_far: float
    calibrated_on: str
    matched_point_id: str
    decided_at: Optional[datetime]
    request_id: str


@dataclass(frozen=True)
class VerifyResult:
    match: bool
    score: float
    audit: Audit
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ReferenceScore:
    point_id: str
    score: float
    source: str


@dataclass(frozen=True)
class SubjectVerifyResult:
    match: bool
    score: float
    references: int
    per_reference: list[ReferenceScore]
    audit: Audit
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SearchHit:
    point_id: str
    subject_id: str
    score: float
    source: str
    labels: dict[str, str]


@dataclass(frozen=True)
class SearchResult:
    hits: list[SearchHit]
    unknown: bool
    audit: Audit
    warnings: list[str] = field(default_factory=list)

    @property
    def best(self) -> Optional[SearchHit]:
        """The best hit, or None when the probe is unknown."""
        return self.hits[0] if self.hits else None


@dataclass(frozen=True)
class Embedding:
    vector: list[float]
    model_id: str
    image_sha256: str
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.vector)


@dataclass(frozen=True)
class Job:
    job_id: str
    status: JobStatus
    subject_id: str
    model_id: str
    point_id: str
    error: str
    enqueued_at: Optional[datetime]
    updated_at: Optional[datetime]
    attempts: int

    @property
    def finished(self) -> bool:
        """DONE or FAILED: the job will not change any more."""
        return self.status in (JobStatus.DONE, JobStatus.FAILED)


@dataclass(frozen=True)
class EnrollResult:
    job: Job
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ItemResult:
    """What became of one batch item. `index` is the item's position in the items given
    (items the client could not even read are rejected here, with a reason that starts
    with "client:", and never sent)."""

    client_ref: str
    index: int
    accepted: bool
    job_id: str
    point_id: str
    reason: str
    already_stored: bool
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class BatchResult:
    accepted: int
    rejected: int
    already_stored: int
    results: list[ItemResult]
    # With wait=True: the final state of every accepted item's job, in item order.
    jobs: list[Job] = field(default_factory=list)

    @property
    def rejected_items(self) -> list[ItemResult]:
        return [r for r in self.results if not r.accepted and not r.already_stored]

    @property
    def failed(self) -> list[Job]:
        """Jobs that failed in a worker (known only with wait=True)."""
        return [j for j in self.jobs if j.status is JobStatus.FAILED]

    @property
    def ok(self) -> bool:
        """Every item accepted or already stored, and (with wait) no job failed."""
        return self.rejected == 0 and not self.failed


@dataclass(frozen=True)
class Reference:
    point_id: str
    image_sha256: str
    source: str
    labels: dict[str, str]
    enrolled_at: Optional[datetime]
    # A small PNG of the enrolled image, when asked for with thumbnails=True; b"" otherwise.
    thumbnail: bytes = b""


@dataclass(frozen=True)
class Subject:
    subject_id: str
    model_id: str
    references: list[Reference]

    def __len__(self) -> int:
        return len(self.references)


@dataclass(frozen=True)
class OperatingPoint:
    name: str
    metric: Optional[Metric]
    target_far: float
    threshold: float
    measured_far: float
    measured_frr: float
    calibrated_on: str


@dataclass(frozen=True)
class SubjectOperatingPoint:
    name: str
    metric: Optional[Metric]
    aggregation: str  # "best", "mean" or "k_of_n:K"
    references: int
    target_far: float
    threshold: float
    measured_far: float
    measured_frr: float
    measured_far_random: float
    calibrated_on: str


@dataclass(frozen=True)
class Model:
    id: str
    name: str
    version: str
    input_name: str
    input_shape: list[int]
    output_name: str
    embedding_size: int
    l2_normalized: bool
    native_metric: Optional[Metric]
    operating_points: list[OperatingPoint]
    default_operating_point: str
    trained: bool
    evaluation: dict[str, float]
    execution_provider: str
    subject_operating_points: list[SubjectOperatingPoint]
    joint_head: str
    input_kind: str  # "image" or "text"
    max_tokens: int


@dataclass(frozen=True)
class ModelList:
    """The served models and the default one; iterable, and indexable by name or id."""

    models: list[Model]
    default_model: str

    def __iter__(self) -> Iterator[Model]:
        return iter(self.models)

    def __len__(self) -> int:
        return len(self.models)

    def __getitem__(self, name_or_id: str) -> Model:
        for m in self.models:
            if name_or_id in (m.name, m.id):
                return m
        raise KeyError(name_or_id)

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.models]


@dataclass(frozen=True)
class ModelCard:
    model: str
    markdown: str
    roc_svg: str
    det_svg: str


@dataclass(frozen=True)
class AuditEntry:
    method: str  # "Verify", "VerifySubject" or "Search"
    subject_id: str
    match: bool
    key_id: str
    image_sha256: list[str]
    audit: Optional[Audit]
    tenant: str


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    scope: Optional[KeyScope]
    tenant: str
    name: str


@dataclass(frozen=True)
class CreatedKey:
    key: ApiKey
    # The key itself, shown once: send it as the api_key of a Client.
    secret: str


# --- conversions from protobuf ---------------------------------------------------------


def _time(message: Any, name: str) -> Optional[datetime]:
    if not message.HasField(name):
        return None
    ts = getattr(message, name)
    return datetime.fromtimestamp(ts.seconds + ts.nanos / 1e9, tz=timezone.utc)


def _enum(cls: Any, number: int) -> Any:
    """A proto enum number as a member of `cls`; None for 0 (UNSPECIFIED) or unknown."""
    member = cls.from_number(number)
    if member is None and cls is JobStatus:
        return JobStatus.UNSPECIFIED
    return member


def _labels(labels: Any) -> dict[str, str]:
    return {label.key: label.value for label in labels}


def _from_pb(cls: Any, pb: Any, **converted: Any) -> Any:
    """The result dataclass `cls` of a protobuf message: the fields given in `converted` as
    they are, every other one copied from the message's scalar field of the same name."""
    copied = {f.name: getattr(pb, f.name) for f in dataclasses.fields(cls) if f.name not in converted}
    return cls(**copied, **converted)


def audit_from(pb: Any) -> Audit:
    return _from_pb(Audit, pb, metric=_enum(Metric, pb.metric), decided_at=_time(pb, "decided_at"))


def verify_from(pb: Any) -> VerifyResult:
    return _from_pb(VerifyResult, pb, audit=audit_from(pb.audit), warnings=list(pb.warnings))


def subject_verify_from(pb: Any) -> SubjectVerifyResult:
    return _from_pb(
        SubjectVerifyResult,
        pb,
        per_reference=[_from_pb(ReferenceScore, r) for r in pb.per_reference],
        audit=audit_from(pb.audit),
        warnings=list(pb.warnings),
    )


def search_from(pb: Any) -> SearchResult:
    return _from_pb(
        SearchResult,
        pb,
        hits=[_from_pb(SearchHit, h, labels=_labels(h.labels)) for h in pb.hits],
        audit=audit_from(pb.audit),
        warnings=list(pb.warnings),
    )


def embedding_from(pb: Any) -> Embedding:
    return _from_pb(Embedding, pb, vector=list(pb.vector), warnings=list(pb.warnings))


def job_from(pb: Any) -> Job:
    return _from_pb(
        Job,
        pb,
        status=_enum(JobStatus, pb.status),
        enqueued_at=_time(pb, "enqueued_at"),
        updated_at=_time(pb, "updated_at"),
    )


def item_from(pb: Any, index: Optional[int] = None) -> ItemResult:
    return _from_pb(ItemResult, pb, index=pb.index if index is None else index, warnings=list(pb.warnings))


def _reference_from(pb: Any) -> Reference:
    return _from_pb(
        Reference,
        pb,
        labels=_labels(pb.labels),
        enrolled_at=_time(pb, "enrolled_at"),
        thumbnail=bytes(pb.thumbnail),
    )


def subject_from(pb: Any) -> Subject:
    return _from_pb(Subject, pb, references=[_reference_from(r) for r in pb.references])


def model_from(pb: Any) -> Model:
    return _from_pb(
        Model,
        pb,
        input_shape=list(pb.input_shape),
        native_metric=_enum(Metric, pb.native_metric),
        operating_points=[
            _from_pb(OperatingPoint, p, metric=_enum(Metric, p.metric)) for p in pb.operating_points
        ],
        evaluation=dict(pb.evaluation),
        subject_operating_points=[
            _from_pb(SubjectOperatingPoint, p, metric=_enum(Metric, p.metric)) for p in pb.subject_operating_points
        ],
    )


def model_card_from(pb: Any) -> ModelCard:
    return _from_pb(ModelCard, pb)


def audit_entry_from(pb: Any) -> AuditEntry:
    return _from_pb(
        AuditEntry,
        pb,
        image_sha256=list(pb.image_sha256),
        audit=audit_from(pb.audit) if pb.HasField("audit") else None,
    )


def key_from(pb: Any) -> ApiKey:
    return _from_pb(ApiKey, pb, scope=_enum(KeyScope, pb.scope))


def asdict(result: Any) -> dict[str, Any]:
    """A result as plain dicts and lists (enums as their strings), e.g. for JSON."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, enum.Enum):
            return value.value
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, bytes):
            return value.hex()
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return plain(result)

