// The resource-server guard against the real server: a real grpc-js server
// with a guarded service, a real grpc-js client, and a Node HTTP server with
// the middleware.
import * as assert from 'node:assert/strict';
import * as http from 'node:http';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';

import * as grpc from '@grpc/grpc-js';
import * as protobuf from 'protobufjs';

import {
  guardService, KeyGuard, KeyRefusedError, keyGuardMiddleware, LatchkeyClient, verifiedCaller,
  type GuardedRequest, type GuardServiceOptions, type KeyGuardMiddlewareOptions,
} from '../src';
import { GRANTED, startServer, type Server } from './server';

const INTEGRATION = 'learner-activity';
const HTTP_GRANT = 'http/GET/*';
let server: Server;
let admin: LatchkeyClient;
const cleanups: (() => unknown)[] = [];

before(async () => {
  server = await startServer({ extraEndpoints: [HTTP_GRANT] });
  admin = new LatchkeyClient(server.addr, { partnerKey: server.partnerKey });
});

after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  admin?.close();
  await server?.stop();
});

// A two-method service with JSON messages: GetOutline is granted, DeleteCourse is not.
const json = {
  serialize: (value: unknown) => Buffer.from(JSON.stringify(value)),
  deserialize: (bytes: Buffer) => JSON.parse(bytes.toString()),
};
const unary = (path: string) => ({
  path, requestStream: false, responseStream: false,
  requestSerialize: json.serialize, requestDeserialize: json.deserialize,
  responseSerialize: json.serialize, responseDeserialize: json.deserialize,
});
const CourseService: grpc.ServiceDefinition = {
  getOutline: unary(`/${GRANTED}`),
  deleteCourse: unary('/course.v1.CourseService/DeleteCourse'),
};
const CourseClient = grpc.makeGenericClientConstructor(CourseService, 'CourseService');

interface Course {
  call(method: 'getOutline' | 'deleteCourse', authorization?: string): Promise<{ caller: unknown }>;
}

type UnaryHandler = (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => unknown;
const answerCaller: UnaryHandler = (call, callback) => callback(null, { caller: verifiedCaller(call) ?? null });

/** A grpc-js server on 127.0.0.1:0 serving the guarded CourseService, and a client to it. */
async function serveGuarded(guard: KeyGuard, handler: UnaryHandler = answerCaller, options?: GuardServiceOptions): Promise<Course> {
  const grpcServer = new grpc.Server();
  grpcServer.addService(CourseService,
    guardService(guard, CourseService, { getOutline: handler, deleteCourse: handler } as grpc.UntypedServiceImplementation, options));
  const port = await new Promise<number>((resolve, reject) =>
    grpcServer.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  const client = new CourseClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as grpc.Client & Record<string, Function>;
  cleanups.push(() => { client.close(); grpcServer.forceShutdown(); guard.close(); });
  return {
    call: (method, authorization) => new Promise((resolve, reject) => {
      const metadata = new grpc.Metadata();
      if (authorization) metadata.set('authorization', authorization);
      client[method]({}, metadata, { deadline: Date.now() + 10_000 },
        (err: grpc.ServiceError | null, value: { caller: unknown }) => (err ? reject(err) : resolve(value)));
    }),
  };
}

/** A node:http server on 127.0.0.1:0 behind the middleware; `handler` runs for allowed requests. */
async function serveHttp(
  guard: KeyGuard,
  handler: (req: GuardedRequest, res: http.ServerResponse) => unknown = (req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ caller: req.latchkey }));
  },
  options?: KeyGuardMiddlewareOptions,
): Promise<string> {
  const middleware = keyGuardMiddleware(guard, options);
  const httpServer = http.createServer((req, res) => middleware(req, res, () => handler(req, res)));
  await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise((resolve) => { guard.close(); httpServer.closeAllConnections(); httpServer.close(resolve); }));
  return `http://127.0.0.1:${(httpServer.address() as AddressInfo).port}`;
}

async function newKey(request: Omit<Parameters<LatchkeyClient['createIntegrationKey']>[0], 'integration'> = {}): Promise<{ keyId: string; apiKey: string }> {
  const created = await admin.createIntegrationKey({ integration: INTEGRATION, ...request });
  return { keyId: created.key!.keyId, apiKey: created.apiKey };
}

/** Whether a guarded call is refused (with any code); rethrows anything that is not a gRPC status. */
async function refused(course: Course, authorization: string): Promise<boolean> {
  try {
    await course.call('getOutline', authorization);
    return false;
  } catch (err) {
    if (typeof (err as grpc.ServiceError).code !== 'number') throw err;
    return true;
  }
}

// Just enough of google.rpc.Status / RetryInfo to read a RESOURCE_EXHAUSTED's details.
const rpcTypes = protobuf.Root.fromJSON({
  nested: {
    Status: {
      fields: { code: { type: 'int32', id: 1 }, message: { type: 'string', id: 2 }, details: { rule: 'repeated', type: 'Any', id: 3 } },
    },
    Any: { fields: { typeUrl: { type: 'string', id: 1 }, value: { type: 'bytes', id: 2 } } },
    RetryInfo: { fields: { retryDelay: { type: 'Duration', id: 1 } } },
    Duration: { fields: { seconds: { type: 'int64', id: 1 }, nanos: { type: 'int32', id: 2 } } },
  },
});

/** The google.rpc.RetryInfo delay (ms) in a status's grpc-status-details-bin; fails when absent. */
function retryInfoMs(err: grpc.ServiceError): number {
  const raw = err.metadata?.get('grpc-status-details-bin')[0];
  assert.ok(Buffer.isBuffer(raw), 'no grpc-status-details-bin');
  const Status = rpcTypes.lookupType('Status');
  const RetryInfo = rpcTypes.lookupType('RetryInfo');
  const status = Status.toObject(Status.decode(raw), { longs: Number }) as { code: number; details?: { typeUrl: string; value: Uint8Array }[] };
  assert.equal(status.code, grpc.status.RESOURCE_EXHAUSTED);
  const detail = (status.details ?? []).find((d) => d.typeUrl === 'type.googleapis.com/google.rpc.RetryInfo');
  assert.ok(detail, 'no google.rpc.RetryInfo in the status details');
  const info = RetryInfo.toObject(RetryInfo.decode(detail.value), { longs: Number }) as { retryDelay?: { seconds?: number; nanos?: number } };
  return (info.retryDelay?.seconds ?? 0) * 1000 + Math.floor((info.retryDelay?.nanos ?? 0) / 1e6);
}

interface Proxy {
  addr: string;
  /** From now on, forward nothing either way, on the open connections and on new ones, but close none. */
  silence(): void;
  close(): void;
}

/** A TCP proxy to `target` that can go silent: a connection that stalls without breaking. */
async function startProxy(target: string): Promise<Proxy> {
  const colon = target.lastIndexOf(':');
  const host = target.slice(0, colon).replace(/^\[|\]$/g, '');
  const port = Number(target.slice(colon + 1));
  const sockets = new Set<net.Socket>();
  const pairs: [net.Socket, net.Socket][] = [];
  let silenced = false;
  const track = (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
  };
  const proxy = net.createServer((client) => {
    track(client);
    if (silenced) {
      client.pause(); // accepted, never answered
      return;
    }
    const upstream = net.connect(port, host);
    track(upstream);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
    pairs.push([client, upstream]);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  return {
    addr: `127.0.0.1:${(proxy.address() as AddressInfo).port}`,
    silence() {
      silenced = true;
      for (const [client, upstream] of pairs) {
        client.unpipe(upstream);
        upstream.unpipe(client);
        client.pause();
        upstream.pause();
      }
    },
    close() {
      proxy.close();
      for (const socket of sockets) socket.destroy();
    },
  };
}

const rejectsWith = (promise: Promise<unknown>, code: grpc.status) =>
  assert.rejects(promise, (err: grpc.ServiceError) => {
    assert.equal(err.code, code, `${grpc.status[err.code]}: ${err.details}`);
    return true;
  });

async function eventually(what: string, condition: () => Promise<boolean> | boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) assert.fail(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test('gRPC: an allowed key reaches the handler, which sees the caller; Basic form accepted', async () => {
  const course = await serveGuarded(new KeyGuard(server.addr));
  const { keyId, apiKey } = await newKey();
  assert.deepEqual((await course.call('getOutline', `Bearer ${apiKey}`)).caller, { integration: INTEGRATION, keyId });
  const rest = apiKey.slice(keyId.length + 1);
  const basic = `Basic ${Buffer.from(`${keyId}:${rest}`).toString('base64')}`;
  assert.deepEqual((await course.call('getOutline', basic)).caller, { integration: INTEGRATION, keyId });
});

test('gRPC: not granted -> PERMISSION_DENIED; garbage or none -> UNAUTHENTICATED', async () => {
  const course = await serveGuarded(new KeyGuard(server.addr));
  const { apiKey } = await newKey();
  await rejectsWith(course.call('deleteCourse', `Bearer ${apiKey}`), grpc.status.PERMISSION_DENIED);
  // A key restricted to networks this caller is not in.
  const restricted = await admin.createIntegrationKey({ integration: INTEGRATION, allowedNetworks: ['192.0.2.0/24'] });
  await rejectsWith(course.call('getOutline', `Bearer ${restricted.apiKey}`), grpc.status.PERMISSION_DENIED);
  await rejectsWith(course.call('getOutline', 'Bearer not-a-key'), grpc.status.UNAUTHENTICATED);
  await rejectsWith(course.call('getOutline', `Bearer ${apiKey}x`), grpc.status.UNAUTHENTICATED);
  await rejectsWith(course.call('getOutline'), grpc.status.UNAUTHENTICATED);
});

test('a watching guard with an hour-long cache refuses a deleted key at once; a non-watching one keeps it', async () => {
  const watching = new KeyGuard(server.addr, { cacheTtlMs: 3_600_000, watch: true, partnerKey: server.partnerKey });
  const course = await serveGuarded(watching);
  const unwatched = new KeyGuard(server.addr, { cacheTtlMs: 3_600_000 });
  cleanups.push(() => unwatched.close());
  await eventually('the change stream is up', () => watching.watchingUp);

  const { keyId, apiKey } = await newKey();
  assert.deepEqual((await course.call('getOutline', `Bearer ${apiKey}`)).caller, { integration: INTEGRATION, keyId });
  assert.equal((await unwatched.check(apiKey, GRANTED)).keyId, keyId);

  await admin.deleteIntegrationKey({ integration: INTEGRATION, keyId });
  await eventually('the deleted key is refused', async () => {
    try {
      await course.call('getOutline', `Bearer ${apiKey}`);
      return false;
    } catch (err) {
      assert.equal((err as grpc.ServiceError).code, grpc.status.UNAUTHENTICATED);
      return true;
    }
  });
  // The same hour-long cache without the stream still allows it: the cache is what the stream evicts.
  assert.equal((await unwatched.check(apiKey, GRANTED)).keyId, keyId);
  // And a fresh check through latchkey agrees the key is gone.
  const uncached = new KeyGuard(server.addr, { cacheTtlMs: 0 });
  cleanups.push(() => uncached.close());
  await assert.rejects(uncached.check(apiKey, GRANTED), (err: KeyRefusedError) => err.code === grpc.status.UNAUTHENTICATED);
});

test('gRPC: latchkey unreachable -> UNAVAILABLE', async () => {
  const course = await serveGuarded(new KeyGuard('127.0.0.1:1', { timeoutMs: 2000 }));
  const { apiKey } = await newKey();
  await rejectsWith(course.call('getOutline', `Bearer ${apiKey}`), grpc.status.UNAVAILABLE);
});

test('HTTP middleware: allowed (req.latchkey set), 401, 403', async () => {
  const base = await serveHttp(new KeyGuard(server.addr));
  const { keyId, apiKey } = await newKey();

  const ok = await fetch(`${base}/outline?x=1`, { headers: { authorization: `Bearer ${apiKey}` } });
  assert.equal(ok.status, 200);
  assert.deepEqual(await ok.json(), { caller: { integration: INTEGRATION, keyId } });

  const basic = `Basic ${Buffer.from(`${keyId}:${apiKey.slice(keyId.length + 1)}`).toString('base64')}`;
  assert.equal((await fetch(`${base}/outline`, { headers: { authorization: basic } })).status, 200);

  const garbage = await fetch(`${base}/outline`, { headers: { authorization: 'Bearer garbage' } });
  assert.equal(garbage.status, 401);
  assert.deepEqual(await garbage.json(), { error: 401, message: 'Invalid credentials' });
  assert.equal((await fetch(`${base}/outline`)).status, 401);

  const denied = await fetch(`${base}/outline`, { method: 'POST', headers: { authorization: `Bearer ${apiKey}` } });
  assert.equal(denied.status, 403);
  assert.equal((await denied.json()).error, 403);
});

test('gRPC: a rate-limited key is never cached: over its limit -> RESOURCE_EXHAUSTED with RetryInfo', async () => {
  const guard = new KeyGuard(server.addr, { cacheTtlMs: 3_600_000 });
  const course = await serveGuarded(guard);
  const { keyId, apiKey } = await newKey({ rateLimit: { limit: 2, window: { seconds: 3600 } } });
  for (let i = 0; i < 2; i++) {
    assert.deepEqual((await course.call('getOutline', `Bearer ${apiKey}`)).caller, { integration: INTEGRATION, keyId });
  }
  await assert.rejects(course.call('getOutline', `Bearer ${apiKey}`), (err: grpc.ServiceError) => {
    assert.equal(err.code, grpc.status.RESOURCE_EXHAUSTED, `${grpc.status[err.code]}: ${err.details}`);
    const delay = retryInfoMs(err);
    assert.ok(delay > 0 && delay <= 3_600_000, `retry delay ${delay} ms`);
    assert.equal(err.metadata.get('retry-after-ms')[0], String(delay));
    return true;
  });
  // Every call went to latchkey, despite the hour-long cache.
  assert.equal(guard.stats.verifies, 3);
  assert.equal(guard.stats.cacheHits, 0);
});

test('HTTP: a rate-limited key over its limit -> 429 with Retry-After', async () => {
  const guard = new KeyGuard(server.addr, { cacheTtlMs: 3_600_000 });
  const base = await serveHttp(guard);
  const { apiKey } = await newKey({ rateLimit: { limit: 2, window: { seconds: 3600 } } });
  const headers = { authorization: `Bearer ${apiKey}` };
  assert.equal((await fetch(`${base}/outline`, { headers })).status, 200);
  assert.equal((await fetch(`${base}/outline`, { headers })).status, 200);
  const limited = await fetch(`${base}/outline`, { headers });
  assert.equal(limited.status, 429);
  const retryAfter = Number(limited.headers.get('retry-after'));
  assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 3600, `Retry-After: ${limited.headers.get('retry-after')}`);
  assert.equal((await limited.json()).error, 429);
  assert.equal(guard.stats.cacheHits, 0);
});

test('a stalled change stream is taken for down: the cache is dropped and a deleted key refused', async () => {
  const proxy = await startProxy(server.addr);
  cleanups.push(() => proxy.close());
  const options = { cacheTtlMs: 3_600_000, watch: true, partnerKey: server.partnerKey, timeoutMs: 2000 };
  const guard = new KeyGuard(proxy.addr, { ...options, heartbeatIntervalMs: 1000 });
  const course = await serveGuarded(guard);
  // The control: the same guard through the same proxy, without heartbeats or stall detection.
  const blind = new KeyGuard(proxy.addr, { ...options, heartbeatIntervalMs: 0 });
  cleanups.push(() => blind.close());
  await eventually('both change streams are up', () => guard.watchingUp && blind.watchingUp);

  const { keyId, apiKey } = await newKey();
  const authorization = `Bearer ${apiKey}`;
  assert.deepEqual((await course.call('getOutline', authorization)).caller, { integration: INTEGRATION, keyId });
  assert.equal((await blind.check(apiKey, GRANTED)).keyId, keyId);
  const hits = guard.stats.cacheHits;
  await course.call('getOutline', authorization);
  assert.equal(guard.stats.cacheHits, hits + 1, 'the verdict is cached');

  proxy.silence();
  // Straight to latchkey: the KEY_CHANGED it sends cannot get through the proxy.
  await admin.deleteIntegrationKey({ integration: INTEGRATION, keyId });
  await eventually('the deleted key is refused', () => refused(course, authorization), 20_000);
  assert.ok(guard.stats.stalls >= 1, JSON.stringify(guard.stats));
  assert.equal(guard.watchingUp, false);
  // Without stall detection the silent stream still looks up, and the cached verdict lives on.
  assert.equal(blind.watchingUp, true);
  assert.equal((await blind.check(apiKey, GRANTED)).keyId, keyId);
});

test('heartbeats keep the change stream up and do not clear the cache', async () => {
  const guard = new KeyGuard(server.addr, { cacheTtlMs: 3_600_000, watch: true, partnerKey: server.partnerKey, heartbeatIntervalMs: 1000 });
  const course = await serveGuarded(guard);
  await eventually('the change stream is up', () => guard.watchingUp);
  const { keyId, apiKey } = await newKey();
  await course.call('getOutline', `Bearer ${apiKey}`);
  const before = guard.stats;
  await eventually('two heartbeats arrive', () => guard.stats.heartbeats >= before.heartbeats + 2);

  assert.deepEqual((await course.call('getOutline', `Bearer ${apiKey}`)).caller, { integration: INTEGRATION, keyId });
  const now = guard.stats;
  assert.equal(now.verifies, before.verifies, 'served from the cache, not verified again');
  assert.equal(now.cacheHits, before.cacheHits + 1);
  assert.equal(now.stalls, 0);
  assert.equal(guard.watchingUp, true);
});

/** Collects the process's unhandled rejections while `body` runs (and a moment after). */
async function unhandledRejectionsDuring(body: () => Promise<void>): Promise<unknown[]> {
  const seen: unknown[] = [];
  const listener = (reason: unknown) => seen.push(reason);
  process.on('unhandledRejection', listener);
  try {
    await body();
    // Unhandled rejections are reported after the microtask queue drains.
    await new Promise((resolve) => setImmediate(resolve));
  } finally {
    process.off('unhandledRejection', listener);
  }
  return seen;
}

test('gRPC: a handler that throws -> INTERNAL without its details, reported to onError', async () => {
  const reported: unknown[] = [];
  const onError = (err: unknown) => reported.push(err);
  const throwing = await serveGuarded(new KeyGuard(server.addr), () => { throw new Error('handler detail'); }, { onError });
  const rejecting = await serveGuarded(new KeyGuard(server.addr), async () => { throw new Error('async handler detail'); }, { onError });
  const { apiKey } = await newKey();
  const unhandled = await unhandledRejectionsDuring(async () => {
    for (const course of [throwing, rejecting]) {
      await assert.rejects(course.call('getOutline', `Bearer ${apiKey}`), (err: grpc.ServiceError) => {
        assert.equal(err.code, grpc.status.INTERNAL, `${grpc.status[err.code]}: ${err.details}`);
        assert.equal(err.details, 'Internal error');
        return true;
      });
    }
  });
  assert.deepEqual(unhandled, []);
  assert.deepEqual(reported.map((err) => (err as Error).message), ['handler detail', 'async handler detail']);
});

test('HTTP: a handler or endpoint function that throws -> 500, reported to onError; the handler never runs unverified', async () => {
  const reported: unknown[] = [];
  const onError = (err: unknown) => reported.push(err);
  const throwing = await serveHttp(new KeyGuard(server.addr), () => { throw new Error('handler detail'); }, { onError });
  let reached = false;
  const badEndpoint = await serveHttp(new KeyGuard(server.addr), (req, res) => {
    reached = true;
    res.end();
  }, { onError, endpoint: () => { throw new Error('endpoint detail'); } });
  const { apiKey } = await newKey();
  const unhandled = await unhandledRejectionsDuring(async () => {
    for (const base of [throwing, badEndpoint]) {
      const res = await fetch(`${base}/outline`, { headers: { authorization: `Bearer ${apiKey}` } });
      assert.equal(res.status, 500);
      assert.deepEqual(await res.json(), { error: 500, message: 'Internal error' });
    }
  });
  assert.deepEqual(unhandled, []);
  assert.equal(reached, false);
  assert.deepEqual(reported.map((err) => (err as Error).message), ['handler detail', 'endpoint detail']);
});
