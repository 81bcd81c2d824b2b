"""The resource-server guard (latchkey_client.guard) against the real server
(conftest.py): a real grpcio server with KeyGuardInterceptor called by a real
grpcio client, and the ASGI middleware driven directly or served by uvicorn.
A stand-in latchkey answers what the real one cannot be made to (load
shedding, a stream that ends on cue), and a TCP proxy between a guard and
latchkey stalls the connection on cue."""

import asyncio
import base64
import http.client
import json
import math
import socket
import threading
import time
from concurrent import futures

import grpc
import pytest
import uvicorn
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from conftest import GRANTED, GRANTED_STREAM, running_server
from latchkey_client import Client, LatchkeyError, integration_keys_pb2 as keys
from latchkey_client._gen.latchkey.v1 import integration_keys_pb2_grpc as keys_grpc
from latchkey_client.guard import (KeyGuard, KeyGuardInterceptor, KeyGuardMiddleware, VerifiedCaller, _Backoff,
                                   current_caller, peer_address, presented_key)

INTEGRATION = "learner-activity"
NOT_GRANTED = "course.v1.CourseService/DeleteCourse"


def eventually(what, condition, timeout=10.0):
    """Polls `condition` until it is true, failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def admin(server):
    with Client(server.addr, partner_key=server.partner_key) as client:
        yield client


@pytest.fixture
def new_key(admin):
    """Creates a key of learner-activity: (key_id, api_key)."""
    def create():
        created = admin.create_integration_key(INTEGRATION)
        return created.key.key_id, created.api_key
    return create


def rate_limited_key(admin, limit=2, window_seconds=3600):
    """Creates a key of learner-activity allowed `limit` verifies per window:
    (key_id, api_key)."""
    rate_limit = keys.RateLimit(limit=limit)
    rate_limit.window.FromSeconds(window_seconds)
    created = admin.create_integration_key(INTEGRATION, rate_limit=rate_limit, labels={"team": "payments"})
    assert created.key.rate_limit == rate_limit and created.key.labels["team"] == "payments"
    return created.key.key_id, created.api_key


def unused_address():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


# A resource server: course.v1.CourseService with raw-bytes methods that
# answer who called.

def _who(request, context):
    caller = current_caller()
    return f"{caller.integration} {caller.key_id} {context.peer()}".encode()


def _stream_who(request, context):
    for _ in range(2):
        caller = current_caller()
        yield f"{caller.integration} {caller.key_id}".encode()


class Resource:
    def __init__(self, guard):
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4),
                                  interceptors=[KeyGuardInterceptor(guard)])
        self.server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("course.v1.CourseService", {
            "GetOutline": grpc.unary_unary_rpc_method_handler(_who),
            "DeleteCourse": grpc.unary_unary_rpc_method_handler(_who),
            "WatchOutline": grpc.unary_stream_rpc_method_handler(_stream_who),
        })])
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")

    def call(self, method, key=None, authorization=None):
        if key is not None:
            authorization = f"Bearer {key}"
        metadata = (("authorization", authorization),) if authorization else ()
        return self.channel.unary_unary(f"/{method}")(b"", metadata=metadata, timeout=10)

    def refusal(self, method, key=None, authorization=None) -> grpc.RpcError:
        with pytest.raises(grpc.RpcError) as info:
            self.call(method, key, authorization)
        return info.value

    def close(self):
        self.channel.close()
        self.server.stop(None)


@pytest.fixture
def resource_for():
    made = []

    def make(guard):
        made.append((guard, Resource(guard)))
        return made[-1][1]
    yield make
    for guard, resource in made:
        resource.close()
        guard.close()


def test_allowed_calls_reach_the_handler_with_the_caller(server, new_key, resource_for):
    key_id, key = new_key()
    resource = resource_for(KeyGuard(server.addr, partner_key=server.partner_key))
    integration, seen_key_id, peer = resource.call(GRANTED, key).decode().split(" ")
    assert (integration, seen_key_id) == (INTEGRATION, key_id)
    assert peer_address(peer) == "127.0.0.1"
    stream = resource.channel.unary_stream(f"/{GRANTED_STREAM}")(
        b"", metadata=(("authorization", f"Bearer {key}"),), timeout=10)
    assert [m.decode() for m in stream] == [f"{INTEGRATION} {key_id}"] * 2


def test_refusals_map_to_grpc_codes(server, new_key, resource_for):
    _, key = new_key()
    resource = resource_for(KeyGuard(server.addr, partner_key=server.partner_key))
    denied = resource.refusal(NOT_GRANTED, key)
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    # A key restricted to networks this caller is not in.
    with grpc.insecure_channel(server.addr) as channel:
        restricted = keys_grpc.IntegrationKeysServiceStub(channel).CreateIntegrationKey(
            keys.CreateIntegrationKeyRequest(integration=INTEGRATION, allowed_networks=["192.0.2.0/24"]),
            metadata=[("sid", server.partner_key)], timeout=10)
    assert resource.refusal(GRANTED, restricted.api_key).code() == grpc.StatusCode.PERMISSION_DENIED
    for garbage in ("not-a-key", key + "x", key[:-1]):
        refused = resource.refusal(GRANTED, garbage)
        assert (refused.code(), refused.details()) == (grpc.StatusCode.UNAUTHENTICATED, "Invalid credentials")
    assert resource.refusal(GRANTED).code() == grpc.StatusCode.UNAUTHENTICATED
    assert resource.refusal(GRANTED, authorization="Basic !!!").code() == grpc.StatusCode.UNAUTHENTICATED
    # A streaming method is guarded too.
    stream = resource.channel.unary_stream(f"/{GRANTED_STREAM}")(b"", timeout=10)
    with pytest.raises(grpc.RpcError) as info:
        list(stream)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_the_basic_form_is_the_same_key(server, new_key, resource_for):
    key_id, key = new_key()
    resource = resource_for(KeyGuard(server.addr, watch=False))
    pair = f"{key_id}:{key[len(key_id) + 1:]}"
    basic = "Basic " + base64.b64encode(pair.encode()).decode()
    assert resource.call(GRANTED, authorization=basic).decode().startswith(f"{INTEGRATION} {key_id} ")
    assert presented_key(basic) == key and presented_key(f"bearer {key}") == key
    wrong = "Basic " + base64.b64encode(f"{key_id}:nope".encode()).decode()
    assert resource.refusal(GRANTED, authorization=wrong).code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_watching_guard_drops_a_deleted_key_at_once(server, admin, new_key, resource_for):
    # An hour-long cache: only latchkey's change stream can end the verdict
    # within the deadline below.
    key_id, key = new_key()
    guard = KeyGuard(server.addr, partner_key=server.partner_key, cache_ttl=3600)
    resource = resource_for(guard)
    eventually("the change stream to be up", lambda: guard.watching)
    resource.call(GRANTED, key)  # allowed, and cached
    assert guard.cached(key, GRANTED) == VerifiedCaller(INTEGRATION, key_id)
    admin.delete_integration_key(INTEGRATION, key_id)

    def refused():
        try:
            resource.call(GRANTED, key)
            return False
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.UNAUTHENTICATED
            return True
    eventually("the guard to hear of the delete", refused)


def test_a_guard_taking_its_partner_key_from_a_client_watches_too(server, admin, new_key):
    key_id, key = new_key()
    with KeyGuard(admin, cache_ttl=3600) as guard:
        eventually("the change stream to be up", lambda: guard.watching)
        assert guard.check(key, GRANTED).key_id == key_id
        admin.delete_integration_key(INTEGRATION, key_id)
        eventually("the guard to hear of the delete", lambda: guard.cached(key, GRANTED) is None)


def test_without_the_stream_a_verdict_lives_the_cache_ttl(server, admin, new_key):
    # The counterpart of the test above: not watching, an hour-long cache
    # keeps a deleted key working (the cache is real), a zero TTL does not.
    key_id, key = new_key()
    with KeyGuard(server.addr, cache_ttl=3600, watch=False) as hour, \
            KeyGuard(server.addr, cache_ttl=0, watch=False) as uncached:
        assert hour.check(key, GRANTED).key_id == key_id
        assert uncached.check(key, GRANTED).key_id == key_id
        admin.delete_integration_key(INTEGRATION, key_id)
        assert hour.check(key, GRANTED).key_id == key_id
        with pytest.raises(Exception) as info:
            uncached.check(key, GRANTED)
        assert info.value.code == grpc.StatusCode.UNAUTHENTICATED


def argon2_runs(metrics_addr):
    """latchkey_argon2_runs_total of the server whose metrics are at `metrics_addr`."""
    conn = http.client.HTTPConnection(metrics_addr, timeout=10)
    try:
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
    finally:
        conn.close()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("latchkey_argon2_runs_total"))


def test_a_change_during_a_verification_keeps_its_verdict_out_of_the_cache(tmp_path):
    # A server with a slow hash (64 MiB, 16 passes): a key's first verify
    # reads the key, then hashes for a while. The key is deleted meanwhile,
    # so the change reaches the guard's stream before the verdict (ALLOWED:
    # latchkey read the key before the delete) reaches the guard, which must
    # not cache it: nothing would evict it later.
    metrics_addr = unused_address()
    slow = {"LATCHKEY_ARGON2_MEMORY_KIB": "65536", "LATCHKEY_ARGON2_ITERATIONS": "16"}
    with running_server(tmp_path, args=("--metrics-listen", metrics_addr), env=slow) as slow_server, \
            Client(slow_server.addr, partner_key=slow_server.partner_key, timeout=60) as admin, \
            KeyGuard(slow_server.addr, partner_key=slow_server.partner_key, cache_ttl=3600,
                     timeout=60) as guard, \
            futures.ThreadPoolExecutor(1) as pool:
        created = admin.create_integration_key(INTEGRATION)
        key_id, key = created.key.key_id, created.api_key
        eventually("the change stream to be up", lambda: guard.watching)
        runs = argon2_runs(metrics_addr)

        def verify():
            caller = guard.check(key, GRANTED)
            return caller, guard.stats().changes
        verifying = pool.submit(verify)
        eventually("latchkey to be hashing the key", lambda: argon2_runs(metrics_addr) > runs, timeout=30)
        admin.delete_integration_key(INTEGRATION, key_id)
        caller, changes_when_answered = verifying.result(timeout=60)
        assert caller == VerifiedCaller(INTEGRATION, key_id)
        # The race this test is about did happen: the change was applied
        # before the verdict came back.
        assert changes_when_answered >= 1
        # (The key is never an operand of an assert: pytest would print it.)
        hit = guard.cached(key, GRANTED)
        assert hit is None
        assert guard.stats().verifications == 1


def test_the_guard_fails_closed_when_latchkey_is_unreachable(resource_for):
    resource = resource_for(KeyGuard(unused_address(), partner_key="pk", timeout=2))
    refused = resource.refusal(GRANTED, "lki_whatever_secret")
    assert (refused.code(), refused.details()) == (grpc.StatusCode.UNAVAILABLE, "Key verification is unavailable")


def test_a_rate_limited_key_is_never_cached_and_refused_past_its_limit(server, admin, resource_for):
    # An hour-long cache and a watching guard: were the verdict cached, the
    # third call would be served from the cache and never reach latchkey.
    key_id, key = rate_limited_key(admin, limit=2)
    guard = KeyGuard(server.addr, partner_key=server.partner_key, cache_ttl=3600)
    resource = resource_for(guard)
    eventually("the change stream to be up", lambda: guard.watching)
    # (The key is never an operand of an assert: pytest would print it.)
    for _ in range(2):
        reply = resource.call(GRANTED, key).decode()
        assert reply.startswith(f"{INTEGRATION} {key_id} ")
        hit = guard.cached(key, GRANTED)
        assert hit is None
    refused = resource.refusal(GRANTED, key)
    assert (refused.code(), refused.details()) == (grpc.StatusCode.RESOURCE_EXHAUSTED,
                                                   "Too many requests; retry later")
    info = error_details_pb2.RetryInfo()
    assert rpc_status.from_call(refused).details[0].Unpack(info)
    delay = info.retry_delay.ToTimedelta().total_seconds()
    assert 0 < delay <= 3600
    assert dict(refused.trailing_metadata())["retry-after"] == str(math.ceil(delay))
    assert guard.stats().verifications == 3, "every use was counted by latchkey"


class SilenceableProxy:
    """A TCP proxy to `upstream` ("host:port") that can be silenced: it then
    keeps every connection open, both sides, but forwards no byte either way,
    as a network path that stalls rather than breaks. Bytes it has read stay
    held (it never speaks again in these tests). It can also cut: close
    every connection and turn new ones away until `admit`, as a path that
    breaks."""

    def __init__(self, upstream):
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)  # so the accept loop sees close()
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.flowing, self.closed, self.admitting = threading.Event(), threading.Event(), threading.Event()
        self.flowing.set()
        self.admitting.set()
        self.sockets, self.connections = [], 0
        threading.Thread(target=self._accept, daemon=True).start()

    def silence(self):
        self.flowing.clear()

    def cut(self):
        self.admitting.clear()
        self._close_connections()

    def admit(self):
        self.admitting.set()

    def close(self):
        self.closed.set()
        self.listener.close()
        self._close_connections()

    def _close_connections(self):
        sockets, self.sockets = self.sockets, []
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes a pump blocked in recv
            except OSError:
                pass
            sock.close()

    def _accept(self):
        while not self.closed.is_set():
            try:
                downstream, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            if not self.admitting.is_set():
                downstream.close()
                continue
            downstream.settimeout(None)
            try:
                upstream = socket.create_connection(self.upstream)
            except OSError:
                downstream.close()
                continue
            self.connections += 1
            self.sockets += [downstream, upstream]
            for source, sink in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source, sink):
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                return
            # Silenced: hold what was read, read no more, pass on no end of
            # stream either (the other side must not learn anything).
            while not self.flowing.wait(0.1):
                if self.closed.is_set():
                    return
            try:
                if not data:
                    sink.shutdown(socket.SHUT_WR)
                    return
                sink.sendall(data)
            except OSError:
                return


@pytest.fixture
def proxy(server):
    proxy = SilenceableProxy(server.addr)
    yield proxy
    proxy.close()


def test_a_stalled_change_stream_drops_the_cache(server, admin, new_key, proxy, resource_for):
    # The guard reaches latchkey only through the proxy and keeps verdicts an
    # hour. Once the proxy is silenced, the delete below never reaches the
    # guard and the connection neither ends nor fails: only the missing
    # heartbeats tell the guard its stream is stalled. Without stall
    # detection the cached verdict would be served for the hour.
    key_id, key = new_key()
    guard = KeyGuard(proxy.address, partner_key=server.partner_key, cache_ttl=3600, heartbeat_interval=1,
                     timeout=2)
    resource = resource_for(guard)
    eventually("the change stream to be up", lambda: guard.watching)
    resource.call(GRANTED, key)  # allowed, and cached
    hit = guard.cached(key, GRANTED)
    assert hit == VerifiedCaller(INTEGRATION, key_id)
    proxy.silence()
    admin.delete_integration_key(INTEGRATION, key_id)  # directly, not through the proxy

    def refused():
        try:
            resource.call(GRANTED, key)
            return False
        except grpc.RpcError as err:
            # UNAVAILABLE when the guard re-verifies through the silent proxy.
            assert err.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.UNAVAILABLE)
            return True
    eventually("the guard to give up the stalled stream", refused, timeout=20)
    assert guard.stats().stalls >= 1
    hit = guard.cached(key, GRANTED)
    assert hit is None


def test_heartbeats_keep_the_cache(server, new_key, resource_for):
    key_id, key = new_key()
    guard = KeyGuard(server.addr, partner_key=server.partner_key, cache_ttl=3600, heartbeat_interval=1)
    resource = resource_for(guard)
    eventually("the change stream to be up", lambda: guard.watching)
    resource.call(GRANTED, key)  # allowed, and cached
    assert guard.stats().verifications == 1
    seen = guard.stats().heartbeats
    eventually("two heartbeats", lambda: guard.stats().heartbeats >= seen + 2)
    reply = resource.call(GRANTED, key).decode()
    assert reply.startswith(f"{INTEGRATION} {key_id} ")
    stats = guard.stats()
    assert stats.verifications == 1, "served from the cache"
    assert stats.stalls == 0 and guard.watching


def test_unknown_change_kinds_drop_every_verdict(server, new_key):
    # A kind newer than this guard may mean anything: it counts as RESET.
    _, key = new_key()
    with KeyGuard(server.addr, cache_ttl=3600, watch=False) as guard:
        guard.check(key, GRANTED)
        guard._apply(keys.WatchKeyChangesResponse(kind=keys.WATCH_EVENT_KIND_HEARTBEAT))
        hit = guard.cached(key, GRANTED)
        assert hit is not None
        guard._apply(keys.WatchKeyChangesResponse(kind=99))
        hit = guard.cached(key, GRANTED)
        assert hit is None


def test_heartbeat_intervals_latchkey_refuses_are_refused_here():
    for interval in (0.5, 301):
        with pytest.raises(ValueError):
            KeyGuard(unused_address(), heartbeat_interval=interval)


def test_reconnection_backs_off_exponentially_with_jitter():
    backoff = _Backoff()
    delays = [backoff.next_delay() for _ in range(10)]
    assert 0.25 <= delays[0] <= 0.5 and 0.5 <= delays[1] <= 1.0
    assert all(15.0 <= d <= 30.0 for d in delays[7:]), "capped at 30 s"
    backoff.reset()
    assert backoff.next_delay() <= 0.5


def test_verdicts_outlive_the_ttl_only_while_the_stream_is_up_and_it_reconnects(server, new_key, proxy):
    key_id, key = new_key()
    with KeyGuard(proxy.address, partner_key=server.partner_key, cache_ttl=0.2) as guard:
        eventually("the change stream to be up", lambda: guard.watching)
        assert guard.check(key, GRANTED) == VerifiedCaller(INTEGRATION, key_id)
        time.sleep(0.3)  # past cache_ttl: the behaviour under test, not a wait
        assert guard.cached(key, GRANTED) is not None, "kept while the stream is up"
        # The path to latchkey breaks, and stays broken until admitted again.
        proxy.cut()
        eventually("the guard to see the stream end", lambda: not guard.watching)
        assert guard.cached(key, GRANTED) is None, "only cache_ttl while the stream is down"
        before = proxy.connections
        proxy.admit()
        eventually("the guard to reconnect", lambda: guard.watching and proxy.connections > before)


@pytest.fixture
def shedding_server(tmp_path):
    """A second latchkey that admits one call at a time, with a slow hash, and
    a thread keeping that one place taken with creates: most other calls are
    shed (RESOURCE_EXHAUSTED with RetryInfo) while it runs."""
    with running_server(tmp_path, args=["--max-in-flight", "1"],
                        env={"LATCHKEY_ARGON2_MEMORY_KIB": "65536", "LATCHKEY_ARGON2_ITERATIONS": "4"}) as running:
        stop = threading.Event()

        def create_forever():
            with Client(running.addr, partner_key=running.partner_key) as admin:
                while not stop.is_set():
                    try:
                        admin.create_integration_key(INTEGRATION)
                    except LatchkeyError:
                        pass  # shed itself, now and then: try again

        creating = threading.Thread(target=create_forever, daemon=True)
        creating.start()
        yield running
        stop.set()
        creating.join(timeout=30)


def test_shedding_by_latchkey_is_resource_exhausted_with_its_delay(shedding_server, resource_for):
    resource = resource_for(KeyGuard(shedding_server.addr, watch=False))
    # Any key: a shed verify is refused before latchkey reads it; one that
    # gets in is MALFORMED, refused as UNAUTHENTICATED.
    deadline, refused = time.monotonic() + 30, None
    while refused is None:
        assert time.monotonic() < deadline, "no verify was shed by latchkey"
        try:
            resource.call(GRANTED, "not-a-latchkey-key")
            pytest.fail("a malformed key was allowed")
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                refused = err
            else:
                assert err.code() == grpc.StatusCode.UNAUTHENTICATED, err
    assert refused.details() == "Key verification is overloaded"
    info = error_details_pb2.RetryInfo()
    assert rpc_status.from_call(refused).details[0].Unpack(info)
    assert info.retry_delay.ToTimedelta().total_seconds() == 1.0, "latchkey's own retry delay"
    assert dict(refused.trailing_metadata())["retry-after"] == "1"


# ASGI

async def _app(scope, receive, send):
    body = json.dumps({"integration": scope["latchkey"].integration,
                       "key_id": scope["state"]["latchkey"].key_id}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


def asgi_get(app, path, authorization=None, method="GET"):
    """Drives one HTTP request through an ASGI app: (status, headers, JSON body)."""
    headers = [(b"authorization", authorization.encode())] if authorization else []
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "headers": headers, "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000), "state": {}}
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start, body = sent[0], b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], dict(start["headers"]), json.loads(body)


def test_the_asgi_middleware_admits_and_refuses(server, new_key):
    key_id, key = new_key()
    with KeyGuard(server.addr, partner_key=server.partner_key) as guard:
        app = KeyGuardMiddleware(_app, guard)
        assert asgi_get(app, "/outline/42", f"Bearer {key}") == (
            200, {b"content-type": b"application/json"}, {"integration": INTEGRATION, "key_id": key_id})
        status, headers, body = asgi_get(app, "/outline/42")
        assert (status, body) == (401, {"error": "unauthenticated", "message": "Invalid credentials"})
        assert headers[b"www-authenticate"] == b"Bearer"
        assert asgi_get(app, "/outline/42", "Bearer not-a-key")[0] == 401
        assert asgi_get(app, "/outline/42", f"Bearer {key}", method="POST")[0] == 403
        assert asgi_get(app, "/courses", f"Bearer {key}")[0] == 403
        # A custom endpoint naming.
        named = KeyGuardMiddleware(_app, guard, endpoint=lambda scope: GRANTED)
        assert asgi_get(named, "/anything", f"Bearer {key}", method="DELETE")[0] == 200


def test_the_asgi_middleware_answers_503_when_latchkey_is_unreachable():
    # (429 past a key's rate limit: the test after this one, on the real server.)
    with KeyGuard(unused_address(), watch=False, timeout=2) as down:
        status, _, body = asgi_get(KeyGuardMiddleware(_app, down), "/outline", "Bearer lki_x_y")
        assert (status, body["message"]) == (503, "Key verification is unavailable")


@pytest.fixture
def serve_asgi():
    """Serves an ASGI app with uvicorn on a port picked by the OS: (host, port)."""
    running = []

    def serve(app):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        running.append((server, thread, sock))
        eventually("uvicorn to start", lambda: server.started or not thread.is_alive())
        assert server.started, "uvicorn did not start"
        return sock.getsockname()
    yield serve
    for server, thread, sock in running:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def http_get(address, path, authorization):
    connection = http.client.HTTPConnection(*address, timeout=10)
    try:
        connection.request("GET", path, headers={"Authorization": authorization})
        response = connection.getresponse()
        return response.status, response.getheader("Retry-After"), json.loads(response.read())
    finally:
        connection.close()


def test_the_asgi_middleware_answers_429_past_a_keys_rate_limit(server, admin, serve_asgi):
    key_id, key = rate_limited_key(admin, limit=2)  # not the gRPC test's key: its own budget
    with KeyGuard(server.addr, partner_key=server.partner_key, cache_ttl=3600) as guard:
        eventually("the change stream to be up", lambda: guard.watching)
        address, authorization = serve_asgi(KeyGuardMiddleware(_app, guard)), f"Bearer {key}"
        for _ in range(2):
            answer = http_get(address, "/outline/42", authorization)
            assert answer == (200, None, {"integration": INTEGRATION, "key_id": key_id})
        status, retry_after, body = http_get(address, "/outline/42", authorization)
        assert (status, body) == (429, {"error": "resource_exhausted", "message": "Too many requests; retry later"})
        assert 1 <= int(retry_after) <= 3600
        assert guard.stats().verifications == 3, "every use was counted by latchkey"


def test_the_asgi_middleware_passes_lifespan_through():
    seen = []

    async def app(scope, receive, send):
        seen.append(scope["type"])

    asyncio.run(KeyGuardMiddleware(app, guard=None)({"type": "lifespan"}, None, None))
    assert seen == ["lifespan"]
