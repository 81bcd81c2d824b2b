"""The Python client against the real server (see conftest.py)."""

import datetime

import grpc
import pytest

from conftest import GRANTED
from latchkey_client import (AlreadyExists, Client, InvalidArgument, LatchkeyError, NotFound, PermissionDenied,
                             Unauthenticated, Unavailable,
                             client_configuration_pb2 as cc, health_pb2, integration_keys_pb2 as keys)

INTEGRATION = "learner-activity"


@pytest.fixture
def admin(server):
    with Client(server.addr, partner_key=server.partner_key) as client:
        yield client


def test_integration_key_lifecycle(admin):
    created = admin.create_integration_key(INTEGRATION, display_name="nightly job")
    key = created.key
    assert created.api_key.startswith(key.key_id + "_")
    assert key.key_id.startswith("lki_") and key.integration == INTEGRATION
    assert key.display_name == "nightly job" and key.state == keys.INTEGRATION_KEY_STATE_ACTIVE

    listed = admin.list_integration_keys(INTEGRATION)
    assert key.key_id in [k.key_id for k in listed.keys]
    assert admin.get_integration_key(INTEGRATION, key.key_id).key == key

    allowed = admin.verify_integration_key(created.api_key, GRANTED)
    assert allowed.decision == keys.DECISION_ALLOWED
    assert (allowed.integration, allowed.key_id) == (INTEGRATION, key.key_id)
    other = admin.verify_integration_key(created.api_key, "course.v1.CourseService/DeleteCourse")
    assert other.decision == keys.DECISION_ENDPOINT_NOT_GRANTED

    admin.delete_integration_key(INTEGRATION, key.key_id)
    with pytest.raises(NotFound):
        admin.get_integration_key(INTEGRATION, key.key_id)
    assert key.key_id not in [k.key_id for k in admin.list_integration_keys(INTEGRATION).keys]
    assert admin.verify_integration_key(created.api_key, GRANTED).decision == keys.DECISION_INVALID


def test_create_with_expiry(admin):
    expire = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
    created = admin.create_integration_key(INTEGRATION, expire_time=expire)
    assert created.key.expire_time.ToDatetime(datetime.timezone.utc).date() == expire.date()
    admin.delete_integration_key(INTEGRATION, created.key.key_id)


def test_verify_needs_no_credential(server):
    with Client(server.addr) as anonymous:
        verdict = anonymous.verify_integration_key("not-a-key", GRANTED)
    assert verdict.decision == keys.DECISION_MALFORMED


def test_not_found_is_typed(admin):
    with pytest.raises(NotFound) as raised:
        admin.list_integration_keys("nope")
    assert raised.value.code == grpc.StatusCode.NOT_FOUND
    assert raised.value.message == "Integration 'nope' not found"
    assert isinstance(raised.value, LatchkeyError)


def test_unauthenticated_without_key(server):
    with Client(server.addr) as anonymous, pytest.raises(Unauthenticated) as raised:
        anonymous.list_integration_keys(INTEGRATION)
    assert raised.value.message == "Invalid credentials"


def test_invalid_argument_carries_field_violations(admin):
    with pytest.raises(InvalidArgument) as raised:
        admin.create_integration_key(INTEGRATION, display_name="x" * 101)
    assert raised.value.message.startswith("Bad request")
    assert "display_name" in [field for field, _ in raised.value.field_violations]


def test_client_configuration(server, admin):
    user_key = "system-user-key-0123456789"
    configured = admin.configure(
        "acme", users=[("ops", user_key, "SCOPE_SYSTEM")], lb_api_key_owner="lb-owner",
        lb_api_key="lb-secret-value", settings={"LbHostOverride": "acme.lb.example.com"}).configuration
    assert configured.client_id == "acme"
    assert [(u.user, u.scope) for u in configured.users] == [("ops", cc.SCOPE_SYSTEM)]
    with pytest.raises(AlreadyExists):
        admin.configure("acme", users=[("ops", user_key, cc.SCOPE_SYSTEM)])

    # The SYSTEM user reads its own client's configuration, secrets redacted.
    with Client(server.addr, basic=("ops", user_key)) as ops:
        settings = {s.name: s for s in ops.get_client_configuration("acme").configuration.settings}
        health = ops.check_client_health("acme")
    assert settings["ClientSettings.LbHostOverride"].value == "acme.lb.example.com"
    for name in ("ClientCredentials.LbApiKey", "ClientCredentials.LbApiKeyOwner"):
        assert settings[name].secret and settings[name].value == ""
    assert health.client_id == "acme" and health.lb_host == "acme.lb.example.com"
    assert health.status == health_pb2.HEALTH_STATUS_HEALTHY, health
    assert health.diagnostics

    with Client(server.addr, basic=("ops", "wrong-key-0123456789")) as wrong, pytest.raises(Unauthenticated):
        wrong.get_client_configuration("acme")
    # Named `<user>@<client>`, a user is tied to its client: any other is PERMISSION_DENIED.
    admin.configure("globex", users=[("boss", "globex-user-key-0123456789", "SCOPE_SYSTEM")])
    with Client(server.addr, basic=("ops@acme", user_key)) as ops:
        assert ops.get_client_configuration("acme").configuration.client_id == "acme"
        with pytest.raises(PermissionDenied):
            ops.get_client_configuration("globex")
    with pytest.raises(NotFound) as raised:
        admin.get_client_configuration("nobody")
    assert raised.value.message == "Client 'nobody' not found"


def test_unknown_client_is_not_configured(admin):
    assert admin.check_client_health("nobody").status == health_pb2.HEALTH_STATUS_NOT_CONFIGURED


def test_check_service_health(admin):
    health = admin.check_service_health()
    assert health.status == health_pb2.HEALTH_STATUS_HEALTHY, health
    assert health.version and health.diagnostics


def test_grpc_health_v1(server):
    with Client(server.addr) as anonymous:
        assert anonymous.health_check() == "SERVING"
        assert anonymous.health_check("latchkey.v1.IntegrationKeysService") == "SERVING"


def test_deadline_is_applied(server):
    # A deadline already past fails fast with the typed error, not a hang.
    # (Already past, not merely short: gRPC rounds a 1 us deadline up, and a
    # fast server then answers within it; a CI run saw exactly that.)
    with Client(server.addr, partner_key=server.partner_key, timeout=-1) as hurried:
        with pytest.raises(LatchkeyError) as raised:
            hurried.list_integration_keys(INTEGRATION)
    # The deadline expires either in the client (DEADLINE_EXCEEDED) or, if
    # the call got out first, in the server, which tonic reports as
    # CANCELLED "Timeout expired". Both are the deadline at work.
    assert raised.value.code in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED)


def test_unreachable_server_is_unavailable():
    # Nothing listens on port 1: the connection is refused at once.
    with Client("127.0.0.1:1", timeout=5) as nowhere, pytest.raises(Unavailable):
        nowhere.health_check()


def test_partner_key_and_basic_are_exclusive():
    with pytest.raises(ValueError):
        Client("127.0.0.1:1", partner_key="k", basic=("u", "k"))
