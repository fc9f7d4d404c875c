"""Exceptions of the gradzoo client.

Every failed call raises a :class:`GradzooError` (or a subclass named after the code) carrying the
gRPC status code name (``"NOT_FOUND"``, ``"INVALID_ARGUMENT"``, ...) and the server's message, so
notebooks can either print it or catch a precise class::

    try:
        client.zoo("nope")
    except gradzoo.NotFoundError as e:
        print(e.code, e.message)
"""

import grpc

__all__ = [
    "GradzooError", "CancelledError", "InvalidArgumentError", "DeadlineExceededError",
    "NotFoundError", "AlreadyExistsError", "PermissionDeniedError", "ResourceExhaustedError",
    "FailedPreconditionError", "AbortedError", "OutOfRangeError", "UnimplementedError",
    "InternalError", "UnavailableError", "DataLossError", "UnauthenticatedError",
    "JobFailedError", "error_from_rpc",
]


class GradzooError(Exception):
    """A call failed. ``code`` is the gRPC status code name, ``message`` the server's text."""

    def __init__(self, code, message):
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")

    @property
    def status_code(self):
        """The code as a ``grpc.StatusCode`` (``grpc.StatusCode.UNKNOWN`` if not a gRPC name)."""
        return getattr(grpc.StatusCode, self.code, grpc.StatusCode.UNKNOWN)


class CancelledError(GradzooError):
    """CANCELLED: the call was cancelled (by the client or the server shutting down)."""


class InvalidArgumentError(GradzooError):
    """INVALID_ARGUMENT: bad input; the message names the field."""


class DeadlineExceededError(GradzooError):
    """DEADLINE_EXCEEDED: the call's deadline (Client timeout) passed."""


class NotFoundError(GradzooError):
    """NOT_FOUND: unknown zoo, model or job name."""


class AlreadyExistsError(GradzooError):
    """ALREADY_EXISTS: e.g. training into a zoo id that exists."""


class PermissionDeniedError(GradzooError):
    """PERMISSION_DENIED: the token may not do this."""


class ResourceExhaustedError(GradzooError):
    """RESOURCE_EXHAUSTED: the request is too big, or the job queue is full (retry later)."""


class FailedPreconditionError(GradzooError):
    """FAILED_PRECONDITION: wrong state, e.g. deleting a zoo a job is using."""


class AbortedError(GradzooError):
    """ABORTED."""


class OutOfRangeError(GradzooError):
    """OUT_OF_RANGE."""


class UnimplementedError(GradzooError):
    """UNIMPLEMENTED: the server does not offer this call yet."""


class InternalError(GradzooError):
    """INTERNAL: a server bug; report it with the message."""


class UnavailableError(GradzooError):
    """UNAVAILABLE: the server cannot be reached, or is starting or stopping."""


class DataLossError(GradzooError):
    """DATA_LOSS: stored data failed its checksum, or a reply arrived malformed."""


class UnauthenticatedError(GradzooError):
    """UNAUTHENTICATED: missing or bad token."""


class JobFailedError(GradzooError):
    """A job ended FAILED. ``job`` is the final :class:`gradzoo.Job`; ``code`` is the code its
    error text starts with (the server writes ``"CODE: message"``), else ``"UNKNOWN"``."""

    def __init__(self, job):
        self.job = job
        text = job.error or "no reason given"
        code, sep, rest = text.partition(": ")
        if sep and code in grpc.StatusCode.__members__:
            super().__init__(code, f"job {job.name} failed: {rest}")
        else:
            super().__init__("UNKNOWN", f"job {job.name} failed: {text}")


_BY_CODE = {
    "CANCELLED": CancelledError,
    "INVALID_ARGUMENT": InvalidArgumentError,
    "DEADLINE_EXCEEDED": DeadlineExceededError,
    "NOT_FOUND": NotFoundError,
    "ALREADY_EXISTS": AlreadyExistsError,
    "PERMISSION_DENIED": PermissionDeniedError,
    "RESOURCE_EXHAUSTED": ResourceExhaustedError,
    "FAILED_PRECONDITION": FailedPreconditionError,
    "ABORTED": AbortedError,
    "OUT_OF_RANGE": OutOfRangeError,
    "UNIMPLEMENTED": UnimplementedError,
    "INTERNAL": InternalError,
    "UNAVAILABLE": UnavailableError,
    "DATA_LOSS": DataLossError,
    "UNAUTHENTICATED": UnauthenticatedError,
}


def make_error(code, message):
    """The GradzooError subclass for ``code`` (a gRPC code name)."""
    return _BY_CODE.get(code, GradzooError)(code, message)


def error_from_rpc(err):
    """Converts a ``grpc.RpcError`` (a failed call) into the matching GradzooError."""
    try:
        code = err.code().name
        message = err.details() or ""
    except Exception:  # not a call error (e.g. a channel closed before the call)
        code, message = "UNKNOWN", str(err)
    return make_error(code, message)
