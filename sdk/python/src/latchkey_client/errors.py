"""Typed errors: one class per gRPC status code latchkey answers with."""

from __future__ import annotations

from typing import List, Optional, Tuple

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


class LatchkeyError(Exception):
    """A call failed. `code` is the grpc.StatusCode, `message` the server's text."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


class NotFound(LatchkeyError):
    pass


class InvalidArgument(LatchkeyError):
    """`field_violations` is [(field, description)] from google.rpc.BadRequest."""

    def __init__(self, code: grpc.StatusCode, message: str,
                 field_violations: Optional[List[Tuple[str, str]]] = None):
        super().__init__(code, message)
        self.field_violations = field_violations or []


class Unauthenticated(LatchkeyError):
    pass


class PermissionDenied(LatchkeyError):
    pass


class AlreadyExists(LatchkeyError):
    pass


class FailedPrecondition(LatchkeyError):
    pass


class Unavailable(LatchkeyError):
    pass


class DeadlineExceeded(LatchkeyError):
    pass


class ResourceExhausted(LatchkeyError):
    """`retry_after` (seconds) is from google.rpc.RetryInfo, None when absent."""

    def __init__(self, code: grpc.StatusCode, message: str, retry_after: Optional[float] = None):
        super().__init__(code, message)
        self.retry_after = retry_after


_BY_CODE = {
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
}


def _status_details(err: grpc.RpcError) -> list:
    # The details travel in the grpc-status-details-bin trailer as a
    # google.rpc.Status; grpc_status decodes it (None when absent).
    try:
        status = rpc_status.from_call(err)
    except ValueError:  # trailer disagrees with the call's status: ignore it
        return []
    return list(status.details) if status else []


def retry_delay(err: grpc.RpcError) -> Optional[float]:
    """The google.rpc.RetryInfo delay of a failed call, in seconds (None when absent)."""
    for detail in _status_details(err):
        info = error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            return info.retry_delay.ToTimedelta().total_seconds()
    return None


def _field_violations(err: grpc.RpcError) -> List[Tuple[str, str]]:
    violations = []
    for detail in _status_details(err):
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            violations += [(v.field, v.description) for v in bad_request.field_violations]
    return violations


def from_rpc_error(err: grpc.RpcError) -> LatchkeyError:
    """The typed error for a failed call (LatchkeyError for other codes)."""
    code, message = err.code(), err.details() or ""
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidArgument(code, message, _field_violations(err))
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return ResourceExhausted(code, message, retry_delay(err))
    return _BY_CODE.get(code, LatchkeyError)(code, message)
