// Connect for Node (@connectrpc/connect-node, Connect protocol, unary JSON
// over HTTP/1.1) against latchkey's HTTP listener: API.md "HTTP (second
// round)" item 1. Errors arrive as ConnectError; assertions use its `code`
// and `rawMessage` (`message` is prefixed with "[code] ").
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { Code, ConnectError } from '@connectrpc/connect';

import { Decision, IntegrationKeyState, integrationKeysClient } from './connect-client.mjs';
import { BUILTIN, CUSTOM, GRANTED, NOT_GRANTED, startServer } from './server.mjs';

const KEY_ID = /^lki_[0-9A-Za-z]{16}$/;

let server;
let admin; // partner key in `sid`
let anonymous; // no credential

before(async () => {
  server = await startServer();
  admin = integrationKeysClient(server.httpUrl, { sid: server.partnerKey });
  anonymous = integrationKeysClient(server.httpUrl);
});

after(async () => {
  await server?.stop();
});

/** The ConnectError `promise` rejects with, checked for code and raw message. */
async function connectError(promise, code, message) {
  let error;
  await assert.rejects(promise, (e) => {
    error = e;
    return e instanceof ConnectError;
  });
  assert.equal(Code[error.code], Code[code], `code of ${error.message}`);
  if (message instanceof RegExp) assert.match(error.rawMessage, message);
  else if (message !== undefined) assert.equal(error.rawMessage, message);
  return error;
}

test('create, get, list, verify, delete through Connect', async () => {
  const created = await admin.createIntegrationKey({ integration: CUSTOM, displayName: 'connect test' });
  const key = created.key;
  assert.ok(key, 'CreateIntegrationKeyResponse.key');
  assert.match(key.keyId, KEY_ID);
  assert.equal(key.integration, CUSTOM);
  assert.equal(key.displayName, 'connect test');
  assert.equal(key.state, IntegrationKeyState.ACTIVE);
  assert.equal(key.disabled, false);
  assert.ok(key.createTime, 'createTime is set');
  assert.equal(key.expireTime, undefined, 'no expiry asked, none set');
  assert.match(created.apiKey, new RegExp(`^${key.keyId}_[0-9A-Za-z]{49}$`));

  const got = await admin.getIntegrationKey({ integration: CUSTOM, keyId: key.keyId });
  assert.equal(got.key.keyId, key.keyId);
  assert.equal(got.key.displayName, 'connect test');
  assert.ok(got.key.createTime, 'createTime is set');
  assert.equal(got.key.state, IntegrationKeyState.ACTIVE);

  const listed = await admin.listIntegrationKeys({ integration: CUSTOM });
  assert.ok(listed.keys.some((k) => k.keyId === key.keyId), 'the new key is listed');
  assert.equal(listed.nextPageToken, '', 'one page');

  // VerifyIntegrationKey needs no credential.
  const allowed = await anonymous.verifyIntegrationKey({ apiKey: created.apiKey, endpoint: GRANTED });
  assert.equal(Decision[allowed.decision], 'ALLOWED');
  assert.equal(allowed.integration, CUSTOM);
  assert.equal(allowed.keyId, key.keyId);
  const other = await anonymous.verifyIntegrationKey({ apiKey: created.apiKey, endpoint: NOT_GRANTED });
  assert.equal(Decision[other.decision], 'ENDPOINT_NOT_GRANTED');
  const malformed = await anonymous.verifyIntegrationKey({ apiKey: 'not-a-key', endpoint: GRANTED });
  assert.equal(Decision[malformed.decision], 'MALFORMED');

  await admin.deleteIntegrationKey({ integration: CUSTOM, keyId: key.keyId });
  await connectError(admin.getIntegrationKey({ integration: CUSTOM, keyId: key.keyId }),
    Code.NotFound, `Key '${key.keyId}' not found`);
  const gone = await anonymous.verifyIntegrationKey({ apiKey: created.apiKey, endpoint: GRANTED });
  assert.equal(Decision[gone.decision], 'INVALID');
});

test('displayName may be 100 characters (API.md: in every API), not 101', async () => {
  const long = 'x'.repeat(100);
  const created = await admin.createIntegrationKey({ integration: CUSTOM, displayName: long });
  assert.equal(created.key.displayName, long);
  await connectError(admin.createIntegrationKey({ integration: CUSTOM, displayName: `${long}x` }),
    Code.InvalidArgument, /^Bad request/);
});

test('the partner key is also accepted as Authorization: Bearer', async () => {
  const bearer = integrationKeysClient(server.httpUrl, { authorization: `Bearer ${server.partnerKey}` });
  const listed = await bearer.listIntegrationKeys({ integration: CUSTOM });
  assert.ok(Array.isArray(listed.keys));
});

test('an unknown integration is NotFound', async () => {
  await connectError(admin.createIntegrationKey({ integration: 'nope' }), Code.NotFound, "Integration 'nope' not found");
  await connectError(admin.listIntegrationKeys({ integration: 'nope' }), Code.NotFound, "Integration 'nope' not found");
});

test('a builtin integration may not hold keys: FailedPrecondition', async () => {
  await connectError(admin.createIntegrationKey({ integration: BUILTIN }),
    Code.FailedPrecondition, 'API keys are available only for custom integrations');
});

test('no credential, or a wrong one, is Unauthenticated "Invalid credentials"', async () => {
  await connectError(anonymous.listIntegrationKeys({ integration: CUSTOM }), Code.Unauthenticated, 'Invalid credentials');
  const wrongSecret = `${server.partnerKeyId}_${'A'.repeat(49)}`;
  const wrong = integrationKeysClient(server.httpUrl, { sid: wrongSecret });
  const error = await connectError(wrong.createIntegrationKey({ integration: CUSTOM }), Code.Unauthenticated, 'Invalid credentials');
  assert.ok(!JSON.stringify({ m: error.rawMessage, d: error.details }).includes('A'.repeat(49)), 'the error echoes no secret');
});

test('a malformed request is InvalidArgument "Bad request..."', async () => {
  await connectError(anonymous.verifyIntegrationKey({ apiKey: 'whatever', endpoint: '' }), Code.InvalidArgument, /^Bad request/);
  await connectError(admin.listIntegrationKeys({ integration: CUSTOM, pageToken: 'not a page token' }), Code.InvalidArgument, /^Bad request/);
});

// The client above is lenient (it reads both JSON field-name forms and
// ignores unknown fields); this pins what the server itself writes: proto3
// JSON names (lowerCamelCase), Content-Type application/json, and Connect
// error JSON with Connect's HTTP status for the code.
test('wire: proto3 JSON field names and Connect error JSON', async () => {
  const call = (method, body, headers = {}) => fetch(`${server.httpUrl}/latchkey.v1.IntegrationKeysService/${method}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'connect-protocol-version': '1', ...headers },
    body: JSON.stringify(body),
  });
  const res = await call('CreateIntegrationKey', { integration: CUSTOM, displayName: 'wire' }, { sid: server.partnerKey });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^application\/json/);
  const created = await res.json();
  assert.equal(typeof created.apiKey, 'string', 'apiKey (not api_key)');
  assert.match(created.key.keyId, KEY_ID, 'key.keyId (not key_id)');
  assert.equal(created.key.displayName, 'wire');
  assert.equal(created.key.state, 'INTEGRATION_KEY_STATE_ACTIVE', 'enums by name');
  assert.match(created.key.createTime, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/, 'Timestamp as RFC 3339');

  // The proto3 JSON mapping lets requests use the original field names too.
  const del = await call('DeleteIntegrationKey', { integration: CUSTOM, key_id: created.key.keyId }, { sid: server.partnerKey });
  assert.equal(del.status, 200);
  assert.deepEqual(await del.json(), {});

  const missing = await call('GetIntegration', { name: 'nope' }, { sid: server.partnerKey });
  assert.equal(missing.status, 404);
  assert.match(missing.headers.get('content-type'), /^application\/json/);
  const body = await missing.json();
  assert.equal(body.code, 'not_found');
  assert.equal(body.message, "Integration 'nope' not found");

  const anon = await call('ListIntegrationKeys', { integration: CUSTOM });
  assert.equal(anon.status, 401);
  assert.equal((await anon.json()).code, 'unauthenticated');
});
