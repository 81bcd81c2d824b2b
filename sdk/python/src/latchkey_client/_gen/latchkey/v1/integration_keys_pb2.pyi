import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class IntegrationKeyState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INTEGRATION_KEY_STATE_UNSPECIFIED: _ClassVar[IntegrationKeyState]
    INTEGRATION_KEY_STATE_ACTIVE: _ClassVar[IntegrationKeyState]
    INTEGRATION_KEY_STATE_DISABLED: _ClassVar[IntegrationKeyState]
    INTEGRATION_KEY_STATE_EXPIRED: _ClassVar[IntegrationKeyState]

class IntegrationKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INTEGRATION_KIND_UNSPECIFIED: _ClassVar[IntegrationKind]
    INTEGRATION_KIND_CUSTOM: _ClassVar[IntegrationKind]
    INTEGRATION_KIND_BUILTIN: _ClassVar[IntegrationKind]

class Decision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DECISION_UNSPECIFIED: _ClassVar[Decision]
    DECISION_ALLOWED: _ClassVar[Decision]
    DECISION_MALFORMED: _ClassVar[Decision]
    DECISION_INVALID: _ClassVar[Decision]
    DECISION_EXPIRED: _ClassVar[Decision]
    DECISION_DISABLED: _ClassVar[Decision]
    DECISION_ENDPOINT_NOT_GRANTED: _ClassVar[Decision]
    DECISION_RATE_LIMITED: _ClassVar[Decision]
    DECISION_CALLER_NOT_ALLOWED: _ClassVar[Decision]

class WatchEventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WATCH_EVENT_KIND_UNSPECIFIED: _ClassVar[WatchEventKind]
    WATCH_EVENT_KIND_RESET: _ClassVar[WatchEventKind]
    WATCH_EVENT_KIND_KEY_CHANGED: _ClassVar[WatchEventKind]
    WATCH_EVENT_KIND_INTEGRATION_CHANGED: _ClassVar[WatchEventKind]
    WATCH_EVENT_KIND_HEARTBEAT: _ClassVar[WatchEventKind]
INTEGRATION_KEY_STATE_UNSPECIFIED: IntegrationKeyState
INTEGRATION_KEY_STATE_ACTIVE: IntegrationKeyState
INTEGRATION_KEY_STATE_DISABLED: IntegrationKeyState
INTEGRATION_KEY_STATE_EXPIRED: IntegrationKeyState
INTEGRATION_KIND_UNSPECIFIED: IntegrationKind
INTEGRATION_KIND_CUSTOM: IntegrationKind
INTEGRATION_KIND_BUILTIN: IntegrationKind
DECISION_UNSPECIFIED: Decision
DECISION_ALLOWED: Decision
DECISION_MALFORMED: Decision
DECISION_INVALID: Decision
DECISION_EXPIRED: Decision
DECISION_DISABLED: Decision
DECISION_ENDPOINT_NOT_GRANTED: Decision
DECISION_RATE_LIMITED: Decision
DECISION_CALLER_NOT_ALLOWED: Decision
WATCH_EVENT_KIND_UNSPECIFIED: WatchEventKind
WATCH_EVENT_KIND_RESET: WatchEventKind
WATCH_EVENT_KIND_KEY_CHANGED: WatchEventKind
WATCH_EVENT_KIND_INTEGRATION_CHANGED: WatchEventKind
WATCH_EVENT_KIND_HEARTBEAT: WatchEventKind

class IntegrationKey(_message.Message):
    __slots__ = ("key_id", "integration", "display_name", "create_time", "expire_time", "last_use_time", "disabled", "state", "labels", "allowed_networks", "rate_limit")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    INTEGRATION_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_USE_TIME_FIELD_NUMBER: _ClassVar[int]
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_NETWORKS_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    integration: str
    display_name: str
    create_time: _timestamp_pb2.Timestamp
    expire_time: _timestamp_pb2.Timestamp
    last_use_time: _timestamp_pb2.Timestamp
    disabled: bool
    state: IntegrationKeyState
    labels: _containers.ScalarMap[str, str]
    allowed_networks: _containers.RepeatedScalarFieldContainer[str]
    rate_limit: RateLimit
    def __init__(self, key_id: _Optional[str] = ..., integration: _Optional[str] = ..., display_name: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_use_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., disabled: _Optional[bool] = ..., state: _Optional[_Union[IntegrationKeyState, str]] = ..., labels: _Optional[_Mapping[str, str]] = ..., allowed_networks: _Optional[_Iterable[str]] = ..., rate_limit: _Optional[_Union[RateLimit, _Mapping]] = ...) -> None: ...

class RateLimit(_message.Message):
    __slots__ = ("limit", "window")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    limit: int
    window: _duration_pb2.Duration
    def __init__(self, limit: _Optional[int] = ..., window: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class Integration(_message.Message):
    __slots__ = ("name", "kind", "description", "endpoints")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: IntegrationKind
    description: str
    endpoints: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[_Union[IntegrationKind, str]] = ..., description: _Optional[str] = ..., endpoints: _Optional[_Iterable[str]] = ...) -> None: ...

class CreateIntegrationKeyRequest(_message.Message):
    __slots__ = ("integration", "display_name", "expire_time", "labels", "allowed_networks", "rate_limit")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    INTEGRATION_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_NETWORKS_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    integration: str
    display_name: str
    expire_time: _timestamp_pb2.Timestamp
    labels: _containers.ScalarMap[str, str]
    allowed_networks: _containers.RepeatedScalarFieldContainer[str]
    rate_limit: RateLimit
    def __init__(self, integration: _Optional[str] = ..., display_name: _Optional[str] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., labels: _Optional[_Mapping[str, str]] = ..., allowed_networks: _Optional[_Iterable[str]] = ..., rate_limit: _Optional[_Union[RateLimit, _Mapping]] = ...) -> None: ...

class CreateIntegrationKeyResponse(_message.Message):
    __slots__ = ("key", "api_key")
    KEY_FIELD_NUMBER: _ClassVar[int]
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    key: IntegrationKey
    api_key: str
    def __init__(self, key: _Optional[_Union[IntegrationKey, _Mapping]] = ..., api_key: _Optional[str] = ...) -> None: ...

class GetIntegrationKeyRequest(_message.Message):
    __slots__ = ("integration", "key_id")
    INTEGRATION_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    integration: str
    key_id: str
    def __init__(self, integration: _Optional[str] = ..., key_id: _Optional[str] = ...) -> None: ...

class GetIntegrationKeyResponse(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: IntegrationKey
    def __init__(self, key: _Optional[_Union[IntegrationKey, _Mapping]] = ...) -> None: ...

class ListIntegrationKeysRequest(_message.Message):
    __slots__ = ("integration", "page_size", "page_token")
    INTEGRATION_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    integration: str
    page_size: int
    page_token: str
    def __init__(self, integration: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListIntegrationKeysResponse(_message.Message):
    __slots__ = ("keys", "next_page_token")
    KEYS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedCompositeFieldContainer[IntegrationKey]
    next_page_token: str
    def __init__(self, keys: _Optional[_Iterable[_Union[IntegrationKey, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteIntegrationKeyRequest(_message.Message):
    __slots__ = ("integration", "key_id")
    INTEGRATION_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    integration: str
    key_id: str
    def __init__(self, integration: _Optional[str] = ..., key_id: _Optional[str] = ...) -> None: ...

class DeleteIntegrationKeyResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class VerifyIntegrationKeyRequest(_message.Message):
    __slots__ = ("api_key", "endpoint", "caller_address")
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    CALLER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    api_key: str
    endpoint: str
    caller_address: str
    def __init__(self, api_key: _Optional[str] = ..., endpoint: _Optional[str] = ..., caller_address: _Optional[str] = ...) -> None: ...

class VerifyIntegrationKeyResponse(_message.Message):
    __slots__ = ("decision", "integration", "key_id", "expire_time", "retry_after", "labels", "rate_limit")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    DECISION_FIELD_NUMBER: _ClassVar[int]
    INTEGRATION_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    decision: Decision
    integration: str
    key_id: str
    expire_time: _timestamp_pb2.Timestamp
    retry_after: _duration_pb2.Duration
    labels: _containers.ScalarMap[str, str]
    rate_limit: RateLimit
    def __init__(self, decision: _Optional[_Union[Decision, str]] = ..., integration: _Optional[str] = ..., key_id: _Optional[str] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., retry_after: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., labels: _Optional[_Mapping[str, str]] = ..., rate_limit: _Optional[_Union[RateLimit, _Mapping]] = ...) -> None: ...

class UpdateIntegrationKeyRequest(_message.Message):
    __slots__ = ("key", "update_mask")
    KEY_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    key: IntegrationKey
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, key: _Optional[_Union[IntegrationKey, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateIntegrationKeyResponse(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: IntegrationKey
    def __init__(self, key: _Optional[_Union[IntegrationKey, _Mapping]] = ...) -> None: ...

class RollIntegrationKeyRequest(_message.Message):
    __slots__ = ("integration", "key_id", "grace_period")
    INTEGRATION_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    GRACE_PERIOD_FIELD_NUMBER: _ClassVar[int]
    integration: str
    key_id: str
    grace_period: _duration_pb2.Duration
    def __init__(self, integration: _Optional[str] = ..., key_id: _Optional[str] = ..., grace_period: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class RollIntegrationKeyResponse(_message.Message):
    __slots__ = ("key", "api_key", "previous_key")
    KEY_FIELD_NUMBER: _ClassVar[int]
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_KEY_FIELD_NUMBER: _ClassVar[int]
    key: IntegrationKey
    api_key: str
    previous_key: IntegrationKey
    def __init__(self, key: _Optional[_Union[IntegrationKey, _Mapping]] = ..., api_key: _Optional[str] = ..., previous_key: _Optional[_Union[IntegrationKey, _Mapping]] = ...) -> None: ...

class ListIntegrationsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListIntegrationsResponse(_message.Message):
    __slots__ = ("integrations", "next_page_token")
    INTEGRATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    integrations: _containers.RepeatedCompositeFieldContainer[Integration]
    next_page_token: str
    def __init__(self, integrations: _Optional[_Iterable[_Union[Integration, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetIntegrationRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetIntegrationResponse(_message.Message):
    __slots__ = ("integration",)
    INTEGRATION_FIELD_NUMBER: _ClassVar[int]
    integration: Integration
    def __init__(self, integration: _Optional[_Union[Integration, _Mapping]] = ...) -> None: ...

class WatchKeyChangesRequest(_message.Message):
    __slots__ = ("heartbeat_interval",)
    HEARTBEAT_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    heartbeat_interval: _duration_pb2.Duration
    def __init__(self, heartbeat_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class WatchKeyChangesResponse(_message.Message):
    __slots__ = ("kind", "key_id", "integration")
    KIND_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    INTEGRATION_FIELD_NUMBER: _ClassVar[int]
    kind: WatchEventKind
    key_id: str
    integration: str
    def __init__(self, kind: _Optional[_Union[WatchEventKind, str]] = ..., key_id: _Optional[str] = ..., integration: _Optional[str] = ...) -> None: ...
