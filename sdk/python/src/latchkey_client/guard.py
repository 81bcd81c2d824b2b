"""Guards for resource servers: verify the caller's integration key against
latchkey before the call reaches the application.

    from latchkey_client.guard import KeyGuard, KeyGuardInterceptor, current_caller

    guard = KeyGuard("latchkey:50051", partner_key=pk)  # pk: to follow WatchKeyChanges
    server = grpc.server(executor, interceptors=[KeyGuardInterceptor(guard)])
    # in a handler: current_caller() -> VerifiedCaller(integration, key_id)

`KeyGuard.check(key, endpoint, caller_address)` is the core: it returns a
VerifiedCaller or raises a typed refusal (a LatchkeyError subclass):
`Unauthenticated` "Invalid credentials" (no key, malformed, invalid,
expired, disabled, caller not allowed), `PermissionDenied` (the key's
integration is not granted the endpoint), `ResourceExhausted` with
`retry_after` (the key is rate limited, or latchkey sheds load) and
`Unavailable` (latchkey cannot be reached: the guard fails closed).

Allowed verdicts are cached in memory, keyed by an HMAC-SHA256 (random key
per process) of (key, endpoint); refusals are not cached, nor are verdicts
of keys with a rate limit (latchkey has to count every use of those). With
`watch=True` a daemon thread follows latchkey's `WatchKeyChanges` and evicts
a key (or a whole integration, or everything on RESET) as soon as latchkey
announces a change, so verdicts may be kept up to an hour while that stream
is up; while it is down (not yet open, broken, refused, stalled) they live
only `cache_ttl`. The stream asks for heartbeats: a stream that carries no
message at all for three heartbeat intervals is stalled (a silent network
path, not a quiet latchkey), so the guard drops every cached verdict and
reconnects, with exponential backoff as after any failure.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextvars
import hashlib
import hmac
import ipaddress
import json
import logging
import math
import queue
import random
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, Optional, Tuple, Union

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from ._client import Client
from ._gen.latchkey.v1 import integration_keys_pb2 as keys_pb2
from ._gen.latchkey.v1 import integration_keys_pb2_grpc as keys_pb2_grpc
from .errors import LatchkeyError, PermissionDenied, ResourceExhausted, Unauthenticated, Unavailable, retry_delay

__all__ = [
    "KeyGuard", "KeyGuardInterceptor", "KeyGuardMiddleware", "VerifiedCaller", "current_caller",
    "presented_key", "peer_address", "http_endpoint", "GuardStats", "WATCHED_TTL",
]

log = logging.getLogger("latchkey_client.guard")

# How long a watching guard keeps a verdict while the change stream is up; an
# eviction from the stream ends it sooner.
WATCHED_TTL = 3600.0
MAX_ENTRIES = 10_000
# The heartbeat intervals latchkey accepts in WatchKeyChangesRequest, seconds.
MIN_HEARTBEAT, MAX_HEARTBEAT = 1.0, 300.0
# Heartbeat intervals without any message after which the stream is stalled.
STALLED_AFTER_HEARTBEATS = 3


class _Backoff:
    """Delays between attempts to open the change stream: doubling from half
    a second to 30 s, each with random jitter (so guards restarted together
    do not reconnect in step), back to the start once a stream is up."""

    FIRST = 0.5
    MAX = 30.0

    def __init__(self) -> None:
        self._failures = 0

    def next_delay(self) -> float:
        base = min(self.FIRST * 2 ** min(self._failures, 6), self.MAX)
        self._failures += 1
        return base * random.uniform(0.5, 1.0)  # between half and all of it

    def reset(self) -> None:
        self._failures = 0


@dataclass(frozen=True)
class VerifiedCaller:
    """Who called, once latchkey allowed the key for the endpoint."""
    integration: str
    key_id: str


@dataclass(frozen=True)
class GuardStats:
    """Counters of a KeyGuard since it was made (KeyGuard.stats())."""
    verifications: int  # VerifyIntegrationKey calls made (cache misses that reached latchkey)
    heartbeats: int  # HEARTBEATs received on the change stream
    stalls: int  # change streams given up as stalled (silent too long)
    changes: int = 0  # changes applied from the change stream (not heartbeats)


@dataclass(frozen=True)
class _CachedAllow:
    caller: VerifiedCaller
    expire_time: Optional[float]  # epoch seconds; None: never
    cached_at: float  # time.monotonic()


def presented_key(authorization: Optional[str]) -> Optional[str]:
    """The integration key in an `authorization` value: `Bearer <key>`, or
    `Basic base64(<key id>:<rest>)` meaning `<key id>_<rest>`. None if absent."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if not value:
        return None
    if scheme.lower() == "bearer":
        return value
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        key_id, sep, rest = decoded.partition(":")
        return f"{key_id}_{rest}" if sep and key_id else None
    return None


def peer_address(peer: Optional[str]) -> Optional[str]:
    """The IP address in a grpc peer string (`ipv4:1.2.3.4:5`, `ipv6:[::1]:5`,
    possibly percent-encoded); IPv4-mapped IPv6 as IPv4; None for others."""
    if not peer:
        return None
    peer = urllib.parse.unquote(peer)
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        host = rest.rpartition(":")[0]
    elif kind == "ipv6":
        host = rest.rpartition(":")[0].strip("[]")
    else:
        return None
    try:
        ip = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return str(ip)


class KeyGuard:
    """Verifies integration keys through latchkey, caching allowed verdicts.

    latchkey:    "host:port" of latchkey, a grpc.Channel, or a latchkey_client.Client
    partner_key: authenticates the change stream (`sid`); None when this
                 server is in latchkey's --trusted-peers (or a Client with a
                 partner key is given)
    cache_ttl:   seconds an allowed verdict is trusted without a working change
                 stream; bounds how long a deleted key keeps working. 0: no cache
    watch:       follow WatchKeyChanges (a daemon thread) and evict at once
    heartbeat_interval: seconds (1 to 300) after which a quiet change stream
                 gets a HEARTBEAT from latchkey; three intervals without any
                 message and the guard counts the stream as stalled (drops
                 every cached verdict, reconnects). None: no heartbeats and no
                 stall detection (for a latchkey without heartbeats)
    timeout:     deadline of each VerifyIntegrationKey call, in seconds
    credentials: grpc.ChannelCredentials (TLS) when latchkey is a target string
    """

    def __init__(self, latchkey: Union[str, grpc.Channel, Client], *, partner_key: Optional[str] = None,
                 cache_ttl: float = 5.0, watch: bool = True, heartbeat_interval: Optional[float] = 5.0,
                 timeout: float = 5.0, credentials: Optional[grpc.ChannelCredentials] = None):
        if heartbeat_interval is not None and not MIN_HEARTBEAT <= heartbeat_interval <= MAX_HEARTBEAT:
            # latchkey would refuse the watch (INVALID_ARGUMENT) on every attempt.
            raise ValueError(f"heartbeat_interval must be {MIN_HEARTBEAT:g} to {MAX_HEARTBEAT:g} seconds "
                             f"(or None), not {heartbeat_interval!r}")
        self._owns_channel = isinstance(latchkey, str)
        if isinstance(latchkey, str):
            self._channel = (grpc.secure_channel(latchkey, credentials) if credentials
                             else grpc.insecure_channel(latchkey))
        elif isinstance(latchkey, Client):
            self._channel = latchkey._channel
            if partner_key is None:
                partner_key = dict(latchkey._metadata).get("sid")
        else:
            self._channel = latchkey
        self._stub = keys_pb2_grpc.IntegrationKeysServiceStub(self._channel)
        self._partner_key = partner_key
        self.cache_ttl = float(cache_ttl)
        self.timeout = timeout
        self.heartbeat_interval = heartbeat_interval
        self._mac_key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._allowed: Dict[bytes, _CachedAllow] = {}
        # Bumped by every change applied (under _lock): a verdict asked for
        # before a change arrived is not cached after it (it may predate it).
        self._changes_seen = 0
        # GuardStats counters, under _lock.
        self._verifications = self._heartbeats = self._stalls = 0
        self._watching = watch
        # Whether the change stream is up (after its first RESET), so that
        # cached verdicts may outlive cache_ttl.
        self._up = False
        self._closed = threading.Event()
        self._stream: Optional[Any] = None
        self._thread: Optional[threading.Thread] = None
        if watch:
            self._thread = threading.Thread(target=self._follow_changes, name="latchkey-watch", daemon=True)
            self._thread.start()

    # lifecycle

    def close(self) -> None:
        """Stops following changes; closes the channel if this guard opened it."""
        self._closed.set()
        stream = self._stream
        if stream is not None:
            stream.cancel()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._owns_channel:
            self._channel.close()

    def __enter__(self) -> "KeyGuard":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def watching(self) -> bool:
        """True while the change stream is up (its first RESET received, and
        it has not ended, failed or stalled since)."""
        return self._up

    def stats(self) -> GuardStats:
        """A snapshot of this guard's counters (for metrics and tests)."""
        with self._lock:
            return GuardStats(self._verifications, self._heartbeats, self._stalls, self._changes_seen)

    # the check

    def _cache_key(self, key: str, endpoint: str) -> bytes:
        return hmac.new(self._mac_key, key.encode() + b"\0" + endpoint.encode(), hashlib.sha256).digest()

    def cached(self, key: Optional[str], endpoint: str) -> Optional[VerifiedCaller]:
        """The cached verdict for (key, endpoint) if it may still be used; no I/O."""
        if not key or self.cache_ttl <= 0:
            return None
        cache_key = self._cache_key(key, endpoint)
        with self._lock:
            hit = self._allowed.get(cache_key)
            if hit is None:
                return None
            age = time.monotonic() - hit.cached_at
            longest = max(self.cache_ttl, WATCHED_TTL) if self._watching else self.cache_ttl
            if age >= longest or (hit.expire_time is not None and hit.expire_time <= time.time()):
                del self._allowed[cache_key]
                return None
            if self._up or age < self.cache_ttl:
                return hit.caller
            return None

    def check(self, key: Optional[str], endpoint: str, caller_address: Optional[str] = None) -> VerifiedCaller:
        """The caller if latchkey allows `key` for `endpoint`; raises a refusal otherwise.

        caller_address: the IP address the end caller connected from; latchkey
        honours it once this server is in its --trusted-peers."""
        if not key:
            raise Unauthenticated(grpc.StatusCode.UNAUTHENTICATED, "Invalid credentials")
        hit = self.cached(key, endpoint)
        if hit is not None:
            return hit
        return self._verify(key, endpoint, caller_address)

    async def check_async(self, key: Optional[str], endpoint: str,
                          caller_address: Optional[str] = None) -> VerifiedCaller:
        """check() for asyncio code: a cache hit answers at once, a miss asks
        latchkey in the default executor."""
        if not key:
            raise Unauthenticated(grpc.StatusCode.UNAUTHENTICATED, "Invalid credentials")
        hit = self.cached(key, endpoint)
        if hit is not None:
            return hit
        # _verify, not check: the cache was just looked up.
        return await asyncio.get_running_loop().run_in_executor(None, self._verify, key, endpoint,
                                                                caller_address)

    def _verify(self, key: str, endpoint: str, caller_address: Optional[str]) -> VerifiedCaller:
        """Asks latchkey (the cache missed); caches an allowed verdict."""
        with self._lock:
            changes_seen = self._changes_seen
            self._verifications += 1
        request = keys_pb2.VerifyIntegrationKeyRequest(api_key=key, endpoint=endpoint,
                                                       caller_address=caller_address or "")
        try:
            verdict = self._stub.VerifyIntegrationKey(request, timeout=self.timeout)
        except grpc.RpcError as err:
            log.warning("latchkey verification failed: %s", err.code())
            if err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                # latchkey is shedding load: so does this server.
                delay = retry_delay(err)
                raise ResourceExhausted(grpc.StatusCode.RESOURCE_EXHAUSTED, "Key verification is overloaded",
                                        delay if delay is not None else 1.0) from None
            raise Unavailable(grpc.StatusCode.UNAVAILABLE, "Key verification is unavailable") from None
        decision = verdict.decision
        if decision == keys_pb2.DECISION_ALLOWED:
            caller = VerifiedCaller(verdict.integration, verdict.key_id)
            # A key with a rate limit is never cached: a cache hit would be a
            # use latchkey does not count, letting the key past its limit.
            if self.cache_ttl > 0 and not verdict.HasField("rate_limit"):
                expire_time = (verdict.expire_time.seconds + verdict.expire_time.nanos / 1e9
                               if verdict.HasField("expire_time") else None)
                entry = _CachedAllow(caller, expire_time, time.monotonic())
                with self._lock:
                    if self._changes_seen == changes_seen:
                        if len(self._allowed) >= MAX_ENTRIES:
                            self._allowed.pop(next(iter(self._allowed)))
                        self._allowed[self._cache_key(key, endpoint)] = entry
            return caller
        if decision == keys_pb2.DECISION_ENDPOINT_NOT_GRANTED:
            raise PermissionDenied(grpc.StatusCode.PERMISSION_DENIED, "This key may not call this endpoint")
        if decision == keys_pb2.DECISION_CALLER_NOT_ALLOWED:
            raise PermissionDenied(grpc.StatusCode.PERMISSION_DENIED,
                                   "This key may not be used from this address")
        if decision == keys_pb2.DECISION_RATE_LIMITED:
            retry_after = (verdict.retry_after.ToTimedelta().total_seconds()
                           if verdict.HasField("retry_after") else 1.0)
            raise ResourceExhausted(grpc.StatusCode.RESOURCE_EXHAUSTED, "Too many requests; retry later",
                                    retry_after)
        # MALFORMED, INVALID, EXPIRED, DISABLED and kinds
        # this guard does not know: the caller cannot tell which.
        raise Unauthenticated(grpc.StatusCode.UNAUTHENTICATED, "Invalid credentials")

    # the change stream

    def _apply(self, change: keys_pb2.WatchKeyChangesResponse) -> None:
        with self._lock:
            if change.kind == keys_pb2.WATCH_EVENT_KIND_HEARTBEAT:
                # A sign of life, not a change: the cache stays, and verdicts
                # in flight may still be cached.
                self._heartbeats += 1
                return
            self._changes_seen += 1
            if change.kind == keys_pb2.WATCH_EVENT_KIND_KEY_CHANGED:
                gone = [k for k, v in self._allowed.items() if v.caller.key_id == change.key_id]
            elif change.kind == keys_pb2.WATCH_EVENT_KIND_INTEGRATION_CHANGED:
                gone = [k for k, v in self._allowed.items() if v.caller.integration == change.integration]
            else:  # RESET, and kinds this guard does not know: drop everything
                self._allowed.clear()
                gone = []
            for k in gone:
                del self._allowed[k]

    def _follow_changes(self) -> None:
        """The watch thread: follows the change stream until close(),
        reconnecting with backoff after each end, failure or stall."""
        metadata = (("sid", self._partner_key),) if self._partner_key else ()
        request = keys_pb2.WatchKeyChangesRequest()
        stalled_after = None
        if self.heartbeat_interval is not None:
            request.heartbeat_interval.FromMilliseconds(round(self.heartbeat_interval * 1000))
            stalled_after = STALLED_AFTER_HEARTBEATS * self.heartbeat_interval
        backoff = _Backoff()
        while not self._closed.is_set():
            try:
                self._follow_stream(request, metadata, stalled_after, backoff)
            except Exception:  # never let the thread die silently
                log.exception("latchkey change stream failed; retrying")
            finally:
                self._up = False
                self._stream = None
            self._closed.wait(backoff.next_delay())

    def _follow_stream(self, request: keys_pb2.WatchKeyChangesRequest, metadata: tuple,
                       stalled_after: Optional[float], backoff: _Backoff) -> None:
        """Applies one stream's changes until it ends, fails or stalls."""
        stream = self._stub.WatchKeyChanges(request, metadata=metadata)
        self._stream = stream
        if self._closed.is_set():
            stream.cancel()
            return
        # grpcio's stream iterator has no timeout, so a reader thread hands
        # the messages over and this thread waits for each with one: the wait
        # that runs out is the stall (it also bounds a call that never starts).
        inbox: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
        threading.Thread(target=_read_stream, args=(stream, inbox), name="latchkey-watch-reader",
                         daemon=True).start()
        while True:
            try:
                item = inbox.get(timeout=stalled_after)
            except queue.Empty:
                # Not even a heartbeat: the path to latchkey is stalled, and
                # changes may be stuck on it. Down as on a RESET: nothing
                # cached is trusted past cache_ttl, nothing cached survives.
                with self._lock:
                    self._up = False
                    self._changes_seen += 1
                    self._allowed.clear()
                    self._stalls += 1
                stream.cancel()
                log.warning("latchkey change stream silent for %g s; dropped cached verdicts, reconnecting",
                            stalled_after)
                return
            if isinstance(item, keys_pb2.WatchKeyChangesResponse):
                self._apply(item)
                if item.kind == keys_pb2.WATCH_EVENT_KIND_RESET:
                    self._up = True
                    backoff.reset()
            elif self._closed.is_set():
                return
            elif isinstance(item, grpc.RpcError):
                log.warning("cannot watch latchkey key changes (%s); retrying", item.code())
                return
            elif isinstance(item, BaseException):
                log.error("latchkey change stream failed; retrying", exc_info=item)
                return
            else:
                log.warning("latchkey change stream ended; cached verdicts fall back to the cache TTL")
                return


def _read_stream(stream: Any, inbox: "queue.SimpleQueue[Any]") -> None:
    """Puts a change stream's messages in `inbox`, then why it ended: the
    grpc.RpcError or other exception, or None for a clean end."""
    try:
        for change in stream:
            inbox.put(change)
        inbox.put(None)
    except Exception as err:  # the RpcError of a failed or cancelled call, mostly
        inbox.put(err)


# grpcio servers

_current_caller: contextvars.ContextVar[Optional[VerifiedCaller]] = contextvars.ContextVar(
    "latchkey_caller", default=None)


def current_caller() -> Optional[VerifiedCaller]:
    """In a handler behind KeyGuardInterceptor: the verified caller."""
    return _current_caller.get()


def _metadata_value(metadata: Optional[Iterable[Tuple[str, Any]]], name: str) -> Optional[str]:
    for key, value in metadata or ():
        if key.lower() == name and isinstance(value, str):
            return value
    return None


class _RefusalStatus(grpc.Status):
    def __init__(self, code: grpc.StatusCode, details: str, trailing_metadata: tuple):
        self.code, self.details, self.trailing_metadata = code, details, trailing_metadata


def _abort(context: grpc.ServicerContext, refusal: LatchkeyError) -> None:
    """Ends the call with the refusal's status (RESOURCE_EXHAUSTED carries
    google.rpc.RetryInfo and a `retry-after` trailer in whole seconds)."""
    retry_after = getattr(refusal, "retry_after", None)
    if retry_after is None:
        context.abort(refusal.code, refusal.message)
    info = error_details_pb2.RetryInfo()
    info.retry_delay.FromNanoseconds(int(retry_after * 1e9))
    detail = any_pb2.Any()
    detail.Pack(info)
    status = rpc_status.to_status(status_pb2.Status(code=refusal.code.value[0], message=refusal.message,
                                                    details=[detail]))
    context.abort_with_status(_RefusalStatus(
        status.code, status.details,
        tuple(status.trailing_metadata) + (("retry-after", str(math.ceil(retry_after))),)))


class KeyGuardInterceptor(grpc.ServerInterceptor):
    """Lets through only calls whose integration key latchkey allows for the
    called method (`pkg.Service/Method`); handlers read the caller with
    current_caller(). `exempt`: full method names that need no key (e.g.
    "grpc.health.v1.Health/Check")."""

    def __init__(self, guard: KeyGuard, *, exempt: Iterable[str] = ()):
        self.guard = guard
        self.exempt = frozenset(exempt)

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        endpoint = handler_call_details.method.lstrip("/")
        if handler is None or endpoint in self.exempt:
            return handler
        key = presented_key(_metadata_value(handler_call_details.invocation_metadata, "authorization"))
        guard = self.guard

        def verify(context) -> VerifiedCaller:
            try:
                return guard.check(key, endpoint, peer_address(context.peer()))
            except LatchkeyError as refusal:
                _abort(context, refusal)  # raises
                raise  # not reached

        def unary_response(behaviour):
            def guarded(request, context):
                _current_caller.set(verify(context))
                try:
                    return behaviour(request, context)
                finally:
                    _current_caller.set(None)
            return guarded

        def stream_response(behaviour):
            def guarded(request, context):
                # A generator: runs as grpc iterates it, the caller set meanwhile.
                _current_caller.set(verify(context))
                try:
                    yield from behaviour(request, context)
                finally:
                    _current_caller.set(None)
            return guarded

        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                unary_response(handler.unary_unary), handler.request_deserializer, handler.response_serializer)
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                unary_response(handler.stream_unary), handler.request_deserializer, handler.response_serializer)
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                stream_response(handler.unary_stream), handler.request_deserializer, handler.response_serializer)
        return grpc.stream_stream_rpc_method_handler(
            stream_response(handler.stream_stream), handler.request_deserializer, handler.response_serializer)


# ASGI applications

_HTTP_STATUS = {
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
}


def http_endpoint(scope) -> str:
    """The default endpoint of an HTTP request: `http/<METHOD><path>`, e.g.
    `http/GET/v1/items/42`. latchkey grants only letters, digits, '.', '_'
    and '/' (and a final '*'), so grant such requests with prefix patterns
    like `http/GET/v1/items/*`."""
    return f"http/{scope['method']}{scope['path']}"


class KeyGuardMiddleware:
    """ASGI middleware: lets through only HTTP requests whose integration key
    (`Authorization: Bearer <key>` or Basic `<key id>:<rest>`) latchkey
    allows for `endpoint(scope)`; puts the VerifiedCaller in
    `scope["latchkey"]` and `scope["state"]["latchkey"]` (Starlette's
    `request.state.latchkey`). Refusals are answered 401 / 403 / 429 (with
    Retry-After) / 503 with a JSON body `{"error", "message"}`; websockets
    are closed (1008) instead. Other scope types pass through."""

    def __init__(self, app, guard: KeyGuard, endpoint: Callable[[dict], str] = http_endpoint):
        self.app = app
        self.guard = guard
        self.endpoint = endpoint

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        authorization = None
        for name, value in scope.get("headers", ()):
            if name.lower() == b"authorization":
                authorization = value.decode("latin-1")
                break
        client = scope.get("client")
        try:
            caller = await self.guard.check_async(presented_key(authorization), self.endpoint(scope),
                                                  client[0] if client else None)
        except LatchkeyError as refusal:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await _refuse(send, refusal)
            return
        scope = dict(scope)
        scope["latchkey"] = caller
        scope["state"] = {**scope.get("state", {}), "latchkey": caller}
        await self.app(scope, receive, send)


async def _refuse(send, refusal: LatchkeyError) -> None:
    status = _HTTP_STATUS.get(refusal.code, 500)
    body = json.dumps({"error": refusal.code.name.lower(), "message": refusal.message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    retry_after = getattr(refusal, "retry_after", None)
    if retry_after is not None:
        headers.append((b"retry-after", str(math.ceil(retry_after)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
