"""A thin synchronous wrapper over the generated stubs.

Each method builds the request, attaches the credential and the deadline,
returns the response message as is (see the .proto files for its fields) and
turns a failed call into a typed LatchkeyError.
"""

from __future__ import annotations

import base64
import datetime
from typing import Iterable, Mapping, Optional, Sequence, Tuple, Union

import grpc
from google.protobuf import timestamp_pb2
from grpc_health.v1 import health_pb2 as grpc_health_pb2
from grpc_health.v1 import health_pb2_grpc as grpc_health_pb2_grpc

from ._gen.latchkey.v1 import audit_pb2_grpc
from ._gen.latchkey.v1 import client_configuration_pb2 as cc_pb2
from ._gen.latchkey.v1 import client_configuration_pb2_grpc as cc_pb2_grpc
from ._gen.latchkey.v1 import health_pb2
from ._gen.latchkey.v1 import health_pb2_grpc
from ._gen.latchkey.v1 import integration_keys_pb2 as keys_pb2
from ._gen.latchkey.v1 import integration_keys_pb2_grpc as keys_pb2_grpc
from .errors import from_rpc_error

# (user, api_key, scope); scope is a Scope value or its name, e.g. "SCOPE_SYSTEM".
UserKey = Tuple[str, str, Union[int, str]]


class Client:
    """latchkey client.

    target:      "host:port"
    partner_key: admin credential, sent as `sid` metadata
    basic:       (user, api_key) of a client's user, sent as `authorization: Basic`;
                 name the user `user@client` to tie it to its client
    timeout:     deadline of every call, in seconds
    credentials: grpc.ChannelCredentials for TLS; plaintext when None

    The raw stubs are available as .integration_keys, .client_configuration,
    .health and .audit; `call(stub.Method, request)` invokes any RPC with this
    client's credential, deadline and typed errors.
    """

    def __init__(self, target: str, partner_key: Optional[str] = None,
                 basic: Optional[Tuple[str, str]] = None, timeout: float = 5.0,
                 credentials: Optional[grpc.ChannelCredentials] = None):
        if partner_key and basic:
            raise ValueError("give partner_key or basic, not both")
        self.timeout = timeout
        self._metadata: Tuple[Tuple[str, str], ...] = ()
        if partner_key:
            self._metadata = (("sid", partner_key),)
        elif basic:
            user, api_key = basic
            token = base64.b64encode(f"{user}:{api_key}".encode()).decode()
            self._metadata = (("authorization", f"Basic {token}"),)
        self._channel = (grpc.secure_channel(target, credentials) if credentials
                         else grpc.insecure_channel(target))
        self.integration_keys = keys_pb2_grpc.IntegrationKeysServiceStub(self._channel)
        self.client_configuration = cc_pb2_grpc.ClientConfigurationServiceStub(self._channel)
        self.health = health_pb2_grpc.HealthServiceStub(self._channel)
        self.audit = audit_pb2_grpc.AuditServiceStub(self._channel)
        self._grpc_health = grpc_health_pb2_grpc.HealthStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def call(self, method, request, timeout: Optional[float] = None):
        """Invoke one unary RPC; raises a LatchkeyError subclass on failure."""
        try:
            return method(request, metadata=self._metadata,
                          timeout=self.timeout if timeout is None else timeout)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from err

    # IntegrationKeysService

    def create_integration_key(self, integration: str, display_name: str = "",
                               expire_time: Union[datetime.datetime, timestamp_pb2.Timestamp, None] = None,
                               *, labels: Optional[Mapping[str, str]] = None,
                               allowed_networks: Sequence[str] = (),
                               rate_limit: Optional[keys_pb2.RateLimit] = None,
                               ) -> keys_pb2.CreateIntegrationKeyResponse:
        """The response's `api_key` is the full key, returned only here.
        `labels`, `allowed_networks` and `rate_limit` restrict the key (see
        IntegrationKey in the proto)."""
        request = keys_pb2.CreateIntegrationKeyRequest(integration=integration, display_name=display_name,
                                                       labels=dict(labels or {}),
                                                       allowed_networks=list(allowed_networks),
                                                       rate_limit=rate_limit)
        if isinstance(expire_time, datetime.datetime):
            request.expire_time.FromDatetime(expire_time)
        elif expire_time is not None:
            request.expire_time.CopyFrom(expire_time)
        return self.call(self.integration_keys.CreateIntegrationKey, request)

    def list_integration_keys(self, integration: str, page_size: int = 0,
                              page_token: str = "") -> keys_pb2.ListIntegrationKeysResponse:
        return self.call(self.integration_keys.ListIntegrationKeys, keys_pb2.ListIntegrationKeysRequest(
            integration=integration, page_size=page_size, page_token=page_token))

    def get_integration_key(self, integration: str, key_id: str) -> keys_pb2.GetIntegrationKeyResponse:
        return self.call(self.integration_keys.GetIntegrationKey,
                         keys_pb2.GetIntegrationKeyRequest(integration=integration, key_id=key_id))

    def delete_integration_key(self, integration: str, key_id: str) -> None:
        self.call(self.integration_keys.DeleteIntegrationKey,
                  keys_pb2.DeleteIntegrationKeyRequest(integration=integration, key_id=key_id))

    def verify_integration_key(self, api_key: str, endpoint: str) -> keys_pb2.VerifyIntegrationKeyResponse:
        """Needs no credential. Every verdict is a response `decision`, not an error."""
        return self.call(self.integration_keys.VerifyIntegrationKey,
                         keys_pb2.VerifyIntegrationKeyRequest(api_key=api_key, endpoint=endpoint))

    # ClientConfigurationService

    def configure(self, client_id: str, users: Iterable[UserKey] = (), lb_api_key_owner: str = "",
                  lb_api_key: str = "", settings: Optional[Mapping[str, str]] = None
                  ) -> cc_pb2.ConfigureResponse:
        """settings: names without the bucket prefix, e.g. {"LbHostOverride": "..."}."""
        user_api_keys = [
            cc_pb2.UserApiKey(user=user, api_key=api_key,
                              scope=cc_pb2.Scope.Value(scope) if isinstance(scope, str) else scope)
            for user, api_key, scope in users
        ]
        return self.call(self.client_configuration.Configure, cc_pb2.ConfigureRequest(
            client_id=client_id,
            client_credentials=cc_pb2.ClientCredentials(
                user_api_keys=user_api_keys, lb_api_key_owner=lb_api_key_owner, lb_api_key=lb_api_key),
            client_settings=dict(settings or {})))

    def get_client_configuration(self, client_id: str) -> cc_pb2.GetClientConfigurationResponse:
        """Secrets are redacted: `ClientCredentials.*` settings have `secret` set and no value."""
        return self.call(self.client_configuration.GetClientConfiguration,
                         cc_pb2.GetClientConfigurationRequest(client_id=client_id))

    # HealthService (configuration health)

    def check_client_health(self, client_id: str) -> health_pb2.CheckClientHealthResponse:
        return self.call(self.health.CheckClientHealth, health_pb2.CheckClientHealthRequest(client_id=client_id))

    def check_service_health(self) -> health_pb2.CheckServiceHealthResponse:
        return self.call(self.health.CheckServiceHealth, health_pb2.CheckServiceHealthRequest())

    # grpc.health.v1.Health (the probe protocol)

    def health_check(self, service: str = "") -> str:
        """The serving status name, e.g. "SERVING"; "" is the whole server."""
        response = self.call(self._grpc_health.Check, grpc_health_pb2.HealthCheckRequest(service=service))
        return grpc_health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
