"""Python client for latchkey, the gRPC API-key service.

    from latchkey_client import Client, NotFound, integration_keys_pb2
    with Client("127.0.0.1:50051", partner_key=pk) as lk:
        created = lk.create_integration_key("learner-activity", "nightly job")
        verdict = lk.verify_integration_key(created.api_key, "course.v1.CourseService/GetOutline")
        assert verdict.decision == integration_keys_pb2.DECISION_ALLOWED

The message and enum modules generated from proto/latchkey/v1 are re-exported
as audit_pb2, client_configuration_pb2, health_pb2 and integration_keys_pb2.
Resource servers guard their methods with latchkey_client.guard (KeyGuard,
KeyGuardInterceptor for grpcio servers, KeyGuardMiddleware for ASGI apps).
"""

from ._client import Client
from ._gen.latchkey.v1 import audit_pb2, client_configuration_pb2, health_pb2, integration_keys_pb2
from .errors import (AlreadyExists, DeadlineExceeded, FailedPrecondition, InvalidArgument, LatchkeyError,
                     NotFound, PermissionDenied, ResourceExhausted, Unauthenticated, Unavailable)

__all__ = [
    "Client", "LatchkeyError", "NotFound", "InvalidArgument", "Unauthenticated", "PermissionDenied",
    "AlreadyExists", "FailedPrecondition", "Unavailable", "DeadlineExceeded", "ResourceExhausted",
    "audit_pb2", "client_configuration_pb2", "health_pb2", "integration_keys_pb2",
]
