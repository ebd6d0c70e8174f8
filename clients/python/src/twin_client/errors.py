"""Errors of the twin client: one `TwinError` with the gRPC status `code` as a string,
and a subclass per code that callers commonly act on.

    try:
        client.enroll("alice", "scan.png")
    except twin_client.PermissionDeniedError as e:   # or: except TwinError as e: e.code
        print(e.code, e.message, e.request_id)
"""

from __future__ import annotations

from typing import Any, Optional

__all__ = [
    "TwinError",
    "InvalidArgumentError",
    "NotFoundError",
    "PermissionDeniedError",
    "UnauthenticatedError",
    "UnavailableError",
    "DeadlineExceededError",
    "ResourceExhaustedError",
    "FailedPreconditionError",
    "InternalError",
    "CancelledError",
    "UnimplementedError",
]


class TwinError(Exception):
    """A call the gateway (or the channel) refused or failed.

    code: the gRPC status name, e.g. "INVALID_ARGUMENT", "NOT_FOUND", "UNAUTHENTICATED".
    message: the server's message (what was wrong and what to do).
    request_id: the gateway's `x-request-id` for the call, when it sent one (find it in
    the server's logs and the audit trail).
    """

    code: str = "UNKNOWN"

    def __init__(self, code: Optional[str] = None, message: str = "", request_id: Optional[str] = None):
        if code is not None:
            self.code = code
        self.message = message
        self.request_id = request_id
        super().__init__(code or self.code, message, request_id)

    def __str__(self) -> str:
        text = f"{self.code}: {self.message}"
        if self.request_id:
            text += f" (request {self.request_id})"
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r}, request_id={self.request_id!r})"

    @classmethod
    def from_rpc_error(cls, error: Any) -> "TwinError":
        """The TwinError (of the subclass for its code) of a grpc.RpcError."""
        code_obj = error.code() if callable(getattr(error, "code", None)) else None
        code = getattr(code_obj, "name", None) or "UNKNOWN"
        details = error.details() if callable(getattr(error, "details", None)) else None
        message = details or str(error)
        request_id = None
        for getter in ("trailing_metadata", "initial_metadata"):
            fn = getattr(error, getter, None)
            try:
                metadata = fn() if callable(fn) else None
            except Exception:  # noqa: BLE001 - metadata is a nicety
                metadata = None
            for key, value in metadata or ():
                if key == "x-request-id":
                    request_id = value.decode() if isinstance(value, bytes) else value
            if request_id:
                break
        klass = _BY_CODE.get(code, TwinError)
        return klass(code, message, request_id)


class InvalidArgumentError(TwinError):
    code = "INVALID_ARGUMENT"


class NotFoundError(TwinError):
    code = "NOT_FOUND"


class PermissionDeniedError(TwinError):
    code = "PERMISSION_DENIED"


class UnauthenticatedError(TwinError):
    code = "UNAUTHENTICATED"


class UnavailableError(TwinError):
    code = "UNAVAILABLE"


class DeadlineExceededError(TwinError):
    code = "DEADLINE_EXCEEDED"


class ResourceExhaustedError(TwinError):
    code = "RESOURCE_EXHAUSTED"


class FailedPreconditionError(TwinError):
    code = "FAILED_PRECONDITION"


class InternalError(TwinError):
    code = "INTERNAL"


class CancelledError(TwinError):
    code = "CANCELLED"


class UnimplementedError(TwinError):
    code = "UNIMPLEMENTED"


# Every subclass above, by its code (`TwinError.from_rpc_error` picks the class here).
_BY_CODE = {klass.code: klass for klass in TwinError.__subclasses__()}
