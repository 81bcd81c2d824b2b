// The resource-server guard against the real server: a real grpc-js server
// with a guarded service, a real grpc-js client, and a Node HTTP server with
// the middleware.
import * as assert from 'node:assert/strict';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';

import * as grpc from '@grpc/grpc-js';

import { guardService, KeyGuard, KeyRefusedError, keyGuardMiddleware, LatchkeyClient, verifiedCaller, type GuardedRequest } from '../src';
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

/** A grpc-js server on 127.0.0.1:0 serving the guarded CourseService, and a client to it. */
async function serveGuarded(guard: KeyGuard): Promise<Course> {
  const grpcServer = new grpc.Server();
  const handler = (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) =>
    callback(null, { caller: verifiedCaller(call) ?? null });
  grpcServer.addService(CourseService, guardService(guard, CourseService, { getOutline: handler, deleteCourse: handler }));
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

async function newKey(): Promise<{ keyId: string; apiKey: string }> {
  const created = await admin.createIntegrationKey({ integration: INTEGRATION });
  return { keyId: created.key!.keyId, apiKey: created.apiKey };
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
  const guard = new KeyGuard(server.addr);
  const middleware = keyGuardMiddleware(guard);
  const httpServer = http.createServer((req, res) => middleware(req, res, () => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ caller: (req as GuardedRequest).latchkey }));
  }));
  await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise((resolve) => { guard.close(); httpServer.closeAllConnections(); httpServer.close(resolve); }));
  const base = `http://127.0.0.1:${(httpServer.address() as AddressInfo).port}`;
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
