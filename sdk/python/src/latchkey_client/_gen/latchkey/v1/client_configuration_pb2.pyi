import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Scope(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SCOPE_UNSPECIFIED: _ClassVar[Scope]
    SCOPE_SYSTEM: _ClassVar[Scope]
    SCOPE_CLIENT: _ClassVar[Scope]
SCOPE_UNSPECIFIED: Scope
SCOPE_SYSTEM: Scope
SCOPE_CLIENT: Scope

class UserApiKey(_message.Message):
    __slots__ = ("user", "api_key", "scope")
    USER_FIELD_NUMBER: _ClassVar[int]
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    user: str
    api_key: str
    scope: Scope
    def __init__(self, user: _Optional[str] = ..., api_key: _Optional[str] = ..., scope: _Optional[_Union[Scope, str]] = ...) -> None: ...

class ClientCredentials(_message.Message):
    __slots__ = ("user_api_keys", "lb_api_key_owner", "lb_api_key")
    USER_API_KEYS_FIELD_NUMBER: _ClassVar[int]
    LB_API_KEY_OWNER_FIELD_NUMBER: _ClassVar[int]
    LB_API_KEY_FIELD_NUMBER: _ClassVar[int]
    user_api_keys: _containers.RepeatedCompositeFieldContainer[UserApiKey]
    lb_api_key_owner: str
    lb_api_key: str
    def __init__(self, user_api_keys: _Optional[_Iterable[_Union[UserApiKey, _Mapping]]] = ..., lb_api_key_owner: _Optional[str] = ..., lb_api_key: _Optional[str] = ...) -> None: ...

class Setting(_message.Message):
    __slots__ = ("name", "value", "secret")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    secret: bool
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ..., secret: _Optional[bool] = ...) -> None: ...

class UserCredential(_message.Message):
    __slots__ = ("user", "scope", "create_time", "update_time")
    USER_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    user: str
    scope: Scope
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, user: _Optional[str] = ..., scope: _Optional[_Union[Scope, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ClientConfiguration(_message.Message):
    __slots__ = ("client_id", "users", "settings", "create_time", "update_time")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    USERS_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    users: _containers.RepeatedCompositeFieldContainer[UserCredential]
    settings: _containers.RepeatedCompositeFieldContainer[Setting]
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, client_id: _Optional[str] = ..., users: _Optional[_Iterable[_Union[UserCredential, _Mapping]]] = ..., settings: _Optional[_Iterable[_Union[Setting, _Mapping]]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ConfigureRequest(_message.Message):
    __slots__ = ("client_id", "client_credentials", "client_settings")
    class ClientSettingsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    CLIENT_SETTINGS_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    client_credentials: ClientCredentials
    client_settings: _containers.ScalarMap[str, str]
    def __init__(self, client_id: _Optional[str] = ..., client_credentials: _Optional[_Union[ClientCredentials, _Mapping]] = ..., client_settings: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ConfigureResponse(_message.Message):
    __slots__ = ("configuration",)
    CONFIGURATION_FIELD_NUMBER: _ClassVar[int]
    configuration: ClientConfiguration
    def __init__(self, configuration: _Optional[_Union[ClientConfiguration, _Mapping]] = ...) -> None: ...

class ConfigureSettingsRequest(_message.Message):
    __slots__ = ("client_id", "settings")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    settings: _containers.RepeatedCompositeFieldContainer[Setting]
    def __init__(self, client_id: _Optional[str] = ..., settings: _Optional[_Iterable[_Union[Setting, _Mapping]]] = ...) -> None: ...

class ConfigureSettingsResponse(_message.Message):
    __slots__ = ("configuration",)
    CONFIGURATION_FIELD_NUMBER: _ClassVar[int]
    configuration: ClientConfiguration
    def __init__(self, configuration: _Optional[_Union[ClientConfiguration, _Mapping]] = ...) -> None: ...

class SetUserCredentialsRequest(_message.Message):
    __slots__ = ("client_id", "user", "api_key", "scope")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    user: str
    api_key: str
    scope: Scope
    def __init__(self, client_id: _Optional[str] = ..., user: _Optional[str] = ..., api_key: _Optional[str] = ..., scope: _Optional[_Union[Scope, str]] = ...) -> None: ...

class SetUserCredentialsResponse(_message.Message):
    __slots__ = ("user_credential",)
    USER_CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    user_credential: UserCredential
    def __init__(self, user_credential: _Optional[_Union[UserCredential, _Mapping]] = ...) -> None: ...

class DeleteUserCredentialsRequest(_message.Message):
    __slots__ = ("client_id", "user")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    user: str
    def __init__(self, client_id: _Optional[str] = ..., user: _Optional[str] = ...) -> None: ...

class DeleteUserCredentialsResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetClientConfigurationRequest(_message.Message):
    __slots__ = ("client_id",)
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    def __init__(self, client_id: _Optional[str] = ...) -> None: ...

class GetClientConfigurationResponse(_message.Message):
    __slots__ = ("configuration",)
    CONFIGURATION_FIELD_NUMBER: _ClassVar[int]
    configuration: ClientConfiguration
    def __init__(self, configuration: _Optional[_Union[ClientConfiguration, _Mapping]] = ...) -> None: ...

class VerifyUserCredentialsRequest(_message.Message):
    __slots__ = ("client_id", "user", "api_key")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    user: str
    api_key: str
    def __init__(self, client_id: _Optional[str] = ..., user: _Optional[str] = ..., api_key: _Optional[str] = ...) -> None: ...

class VerifyUserCredentialsResponse(_message.Message):
    __slots__ = ("valid", "scope", "rate_limited", "retry_after")
    VALID_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMITED_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_FIELD_NUMBER: _ClassVar[int]
    valid: bool
    scope: Scope
    rate_limited: bool
    retry_after: _duration_pb2.Duration
    def __init__(self, valid: _Optional[bool] = ..., scope: _Optional[_Union[Scope, str]] = ..., rate_limited: _Optional[bool] = ..., retry_after: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...
