// The TypeScript client against the real server (see server.ts).
import * as assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import * as grpc from '@grpc/grpc-js';

import {
  AlreadyExistsError, DeadlineExceededError, InvalidArgumentError, LatchkeyClient, LatchkeyError, NotFoundError,
  PermissionDeniedError, UnauthenticatedError, UnavailableError,
} from '../src';
import { GRANTED, startServer, type Server } from './server';

const INTEGRATION = 'learner-activity';
let server: Server;
let admin: LatchkeyClient;
let anonymous: LatchkeyClient;

before(async () => {
  server = await startServer();
  admin = new LatchkeyClient(server.addr, { partnerKey: server.partnerKey });
  anonymous = new LatchkeyClient(server.addr);
});

after(async () => {
  admin?.close();
  anonymous?.close();
  await server?.stop();
});

test('integration key lifecycle: create, list, get, verify, delete', async () => {
  const created = await admin.createIntegrationKey({ integration: INTEGRATION, displayName: 'nightly job' });
  const key = created.key!;
  assert.ok(key.keyId.startsWith('lki_'));
  assert.ok(created.apiKey.startsWith(`${key.keyId}_`));
  assert.equal(key.displayName, 'nightly job');
  assert.equal(key.state, 'INTEGRATION_KEY_STATE_ACTIVE');

  const listed = await admin.listIntegrationKeys({ integration: INTEGRATION });
  assert.ok(listed.keys.some((k) => k.keyId === key.keyId));
  assert.deepEqual((await admin.getIntegrationKey({ integration: INTEGRATION, keyId: key.keyId })).key, key);

  const allowed = await admin.verifyIntegrationKey({ apiKey: created.apiKey, endpoint: GRANTED });
  assert.equal(allowed.decision, 'DECISION_ALLOWED');
  assert.equal(allowed.keyId, key.keyId);
  const other = await admin.verifyIntegrationKey({ apiKey: created.apiKey, endpoint: 'course.v1.CourseService/DeleteCourse' });
  assert.equal(other.decision, 'DECISION_ENDPOINT_NOT_GRANTED');

  await admin.deleteIntegrationKey({ integration: INTEGRATION, keyId: key.keyId });
  await assert.rejects(admin.getIntegrationKey({ integration: INTEGRATION, keyId: key.keyId }), NotFoundError);
  const after = await admin.listIntegrationKeys({ integration: INTEGRATION });
  assert.ok(!after.keys.some((k) => k.keyId === key.keyId));
  assert.equal((await admin.verifyIntegrationKey({ apiKey: created.apiKey, endpoint: GRANTED })).decision, 'DECISION_INVALID');
});

test('verify needs no credential', async () => {
  const verdict = await anonymous.verifyIntegrationKey({ apiKey: 'not-a-key', endpoint: GRANTED });
  assert.equal(verdict.decision, 'DECISION_MALFORMED');
});

test('typed errors: NotFound, Unauthenticated, InvalidArgument with field violations', async () => {
  await assert.rejects(admin.listIntegrationKeys({ integration: 'nope' }), (err: unknown) => {
    assert.ok(err instanceof NotFoundError && err instanceof LatchkeyError);
    assert.equal(err.code, grpc.status.NOT_FOUND);
    assert.equal(err.details, "Integration 'nope' not found");
    return true;
  });
  await assert.rejects(anonymous.listIntegrationKeys({ integration: INTEGRATION }), (err: unknown) => {
    assert.ok(err instanceof UnauthenticatedError);
    assert.equal(err.details, 'Invalid credentials');
    return true;
  });
  await assert.rejects(admin.createIntegrationKey({ integration: INTEGRATION, displayName: 'x'.repeat(101) }), (err: unknown) => {
    assert.ok(err instanceof InvalidArgumentError);
    assert.match(err.details, /^Bad request/);
    assert.ok(err.fieldViolations.some((v) => v.field === 'display_name'), JSON.stringify(err.fieldViolations));
    return true;
  });
});

test('client configuration: Configure, then the SYSTEM user reads it redacted and checks its health', async () => {
  const userKey = 'system-user-key-0123456789';
  const configured = await admin.configure({
    clientId: 'acme',
    clientCredentials: {
      userApiKeys: [{ user: 'ops', apiKey: userKey, scope: 'SCOPE_SYSTEM' }],
      lbApiKeyOwner: 'lb-owner',
      lbApiKey: 'lb-secret-value',
    },
    clientSettings: { LbHostOverride: 'acme.lb.example.com' },
  });
  assert.deepEqual(configured.configuration!.users.map((u) => [u.user, u.scope]), [['ops', 'SCOPE_SYSTEM']]);
  await assert.rejects(admin.configure({ clientId: 'acme' }), AlreadyExistsError);

  const ops = new LatchkeyClient(server.addr, { basic: { user: 'ops', apiKey: userKey } });
  try {
    const settings = new Map((await ops.getClientConfiguration({ clientId: 'acme' })).configuration!.settings.map((s) => [s.name, s]));
    assert.equal(settings.get('ClientSettings.LbHostOverride')?.value, 'acme.lb.example.com');
    for (const name of ['ClientCredentials.LbApiKey', 'ClientCredentials.LbApiKeyOwner']) {
      assert.equal(settings.get(name)?.secret, true);
      assert.equal(settings.get(name)?.value, '');
    }
    const health = await ops.checkClientHealth({ clientId: 'acme' });
    assert.equal(health.status, 'HEALTH_STATUS_HEALTHY', JSON.stringify(health));
    assert.equal(health.lbHost, 'acme.lb.example.com');
  } finally {
    ops.close();
  }
  // Named `<user>@<client>`, a user is tied to its client: any other is PERMISSION_DENIED.
  await admin.configure({ clientId: 'globex', clientCredentials: { userApiKeys: [{ user: 'boss', apiKey: 'globex-user-key-0123456789', scope: 'SCOPE_SYSTEM' }] } });
  const opsAtAcme = new LatchkeyClient(server.addr, { basic: { user: 'ops@acme', apiKey: userKey } });
  try {
    assert.equal((await opsAtAcme.getClientConfiguration({ clientId: 'acme' })).configuration!.clientId, 'acme');
    await assert.rejects(opsAtAcme.getClientConfiguration({ clientId: 'globex' }), PermissionDeniedError);
  } finally {
    opsAtAcme.close();
  }
  await assert.rejects(admin.getClientConfiguration({ clientId: 'nobody' }), /Client 'nobody' not found/);
  assert.equal((await admin.checkClientHealth({ clientId: 'nobody' })).status, 'HEALTH_STATUS_NOT_CONFIGURED');
});

test('CheckServiceHealth', async () => {
  const health = await admin.checkServiceHealth();
  assert.equal(health.status, 'HEALTH_STATUS_HEALTHY', JSON.stringify(health));
  assert.ok(health.version.length > 0 && health.diagnostics.length > 0);
});

test('grpc.health.v1 Check', async () => {
  assert.equal(await anonymous.healthCheck(), 'SERVING');
  assert.equal(await anonymous.healthCheck('latchkey.v1.IntegrationKeysService'), 'SERVING');
});

test('the deadline applies', async () => {
  const hurried = new LatchkeyClient(server.addr, { partnerKey: server.partnerKey, timeoutMs: 0 });
  try {
    await assert.rejects(hurried.listIntegrationKeys({ integration: INTEGRATION }), DeadlineExceededError);
  } finally {
    hurried.close();
  }
});

test('an unreachable server is UNAVAILABLE', async () => {
  // Nothing listens on port 1: the connection is refused at once.
  const nowhere = new LatchkeyClient('127.0.0.1:1');
  try {
    await assert.rejects(nowhere.healthCheck(), UnavailableError);
  } finally {
    nowhere.close();
  }
});

test('partnerKey and basic are exclusive', () => {
  assert.throws(() => new LatchkeyClient('127.0.0.1:1', { partnerKey: 'k', basic: { user: 'u', apiKey: 'k' } }), TypeError);
});
