"""twin_client: a Python client for the twin gateway (`twin serve`).

    from twin_client import Client

    with Client("127.0.0.1:50051", api_key="...") as client:
        client.enroll("alice", "alice-1.png", wait=True)
        print(client.verify_subject("alice", "probe.png").match)

Every RPC of twin.v1 (Verification, Similarity, Enrollment, Models, AuditTrail, ApiKeys)
is a method of `Client`; results are frozen dataclasses, errors `TwinError`s.
"""

from __future__ import annotations

from ._images import Text
from .client import IMAGE_EXTENSIONS, Client
from .errors import (
    CancelledError,
    DeadlineExceededError,
    FailedPreconditionError,
    InternalError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    TwinError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
)
from .types import (
    Aggregation,
    ApiKey,
    Audit,
    AuditEntry,
    BatchResult,
    CreatedKey,
    Embedding,
    EnqueueItem,
    EnrollResult,
    ItemResult,
    Job,
    JobStatus,
    KeyScope,
    Metric,
    Model,
    ModelCard,
    ModelList,
    OperatingPoint,
    Reference,
    ReferenceScore,
    SearchHit,
    SearchResult,
    Subject,
    SubjectOperatingPoint,
    SubjectVerifyResult,
    VerifyResult,
    asdict,
)

try:
    from importlib.metadata import PackageNotFoundError, version

    __version__ = version("twin-client")
except PackageNotFoundError:  # pragma: no cover - run from a source tree
    __version__ = "0.0.0"

__all__ = [
    "Aggregation",
    "ApiKey",
    "Audit",
    "AuditEntry",
    "BatchResult",
    "CancelledError",
    "Client",
    "CreatedKey",
    "DeadlineExceededError",
    "Embedding",
    "EnqueueItem",
    "EnrollResult",
    "FailedPreconditionError",
    "IMAGE_EXTENSIONS",
    "InternalError",
    "InvalidArgumentError",
    "ItemResult",
    "Job",
    "JobStatus",
    "KeyScope",
    "Metric",
    "Model",
    "ModelCard",
    "ModelList",
    "NotFoundError",
    "OperatingPoint",
    "PermissionDeniedError",
    "Reference",
    "ReferenceScore",
    "ResourceExhaustedError",
    "SearchHit",
    "SearchResult",
    "Subject",
    "SubjectOperatingPoint",
    "SubjectVerifyResult",
    "Text",
    "TwinError",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "VerifyResult",
    "asdict",
]
