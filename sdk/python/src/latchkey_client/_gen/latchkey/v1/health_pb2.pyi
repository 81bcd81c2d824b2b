from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class HealthStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HEALTH_STATUS_UNSPECIFIED: _ClassVar[HealthStatus]
    HEALTH_STATUS_HEALTHY: _ClassVar[HealthStatus]
    HEALTH_STATUS_DEGRADED: _ClassVar[HealthStatus]
    HEALTH_STATUS_UNHEALTHY: _ClassVar[HealthStatus]
    HEALTH_STATUS_NOT_CONFIGURED: _ClassVar[HealthStatus]

class DiagnosticStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DIAGNOSTIC_STATUS_UNSPECIFIED: _ClassVar[DiagnosticStatus]
    DIAGNOSTIC_STATUS_PASS: _ClassVar[DiagnosticStatus]
    DIAGNOSTIC_STATUS_WARN: _ClassVar[DiagnosticStatus]
    DIAGNOSTIC_STATUS_FAIL: _ClassVar[DiagnosticStatus]
HEALTH_STATUS_UNSPECIFIED: HealthStatus
HEALTH_STATUS_HEALTHY: HealthStatus
HEALTH_STATUS_DEGRADED: HealthStatus
HEALTH_STATUS_UNHEALTHY: HealthStatus
HEALTH_STATUS_NOT_CONFIGURED: HealthStatus
DIAGNOSTIC_STATUS_UNSPECIFIED: DiagnosticStatus
DIAGNOSTIC_STATUS_PASS: DiagnosticStatus
DIAGNOSTIC_STATUS_WARN: DiagnosticStatus
DIAGNOSTIC_STATUS_FAIL: DiagnosticStatus

class Diagnostic(_message.Message):
    __slots__ = ("name", "status", "detail")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    name: str
    status: DiagnosticStatus
    detail: str
    def __init__(self, name: _Optional[str] = ..., status: _Optional[_Union[DiagnosticStatus, str]] = ..., detail: _Optional[str] = ...) -> None: ...

class CheckClientHealthRequest(_message.Message):
    __slots__ = ("client_id",)
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    def __init__(self, client_id: _Optional[str] = ...) -> None: ...

class CheckClientHealthResponse(_message.Message):
    __slots__ = ("client_id", "status", "diagnostics", "lb_host")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DIAGNOSTICS_FIELD_NUMBER: _ClassVar[int]
    LB_HOST_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    status: HealthStatus
    diagnostics: _containers.RepeatedCompositeFieldContainer[Diagnostic]
    lb_host: str
    def __init__(self, client_id: _Optional[str] = ..., status: _Optional[_Union[HealthStatus, str]] = ..., diagnostics: _Optional[_Iterable[_Union[Diagnostic, _Mapping]]] = ..., lb_host: _Optional[str] = ...) -> None: ...

class CheckServiceHealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CheckServiceHealthResponse(_message.Message):
    __slots__ = ("status", "diagnostics", "version")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DIAGNOSTICS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    status: HealthStatus
    diagnostics: _containers.RepeatedCompositeFieldContainer[Diagnostic]
    version: str
    def __init__(self, status: _Optional[_Union[HealthStatus, str]] = ..., diagnostics: _Optional[_Iterable[_Union[Diagnostic, _Mapping]]] = ..., version: _Optional[str] = ...) -> None: ...
