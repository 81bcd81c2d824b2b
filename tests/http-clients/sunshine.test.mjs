// Zendesk's generated Sunshine Conversations client (npm
// sunshine-conversations-client, CustomIntegrationApiKeysApi) against
// latchkey's HTTP listener: API.md "HTTP (second round)" item 4.
//
// What this client does (read from its dist/ApiClient.js, superagent 5):
// - URL = ApiClient.basePath + the operation's path, and every path already
//   starts with /v2 (e.g. /v2/apps/{appId}/integrations/{integrationId}/keys),
//   so basePath is the server's origin WITHOUT /v2; path parameters go
//   through encodeURIComponent.
// - basicAuth sends `Authorization: Basic base64(username:password)`;
//   bearerAuth (accessToken) sends `Authorization: Bearer <token>`.
// - A 2xx answer resolves; its body is parsed only if the Content-Type is
//   JSON (otherwise the models come back silently empty), then copied into
//   the model classes, which keep the fields they know (key.id,
//   key.displayName, key.secret; keys) and drop the rest. An empty JSON
//   object `{}` comes back as the raw text "{}" (delete's return value).
// - A non-2xx answer rejects with a plain object (not an Error):
//   { status, statusText, body (parsed JSON error document), response
//   (superagent Response), error (superagent's Error) }.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import Sunshine from 'sunshine-conversations-client';

import { Decision, integrationKeysClient } from './connect-client.mjs';
import { BUILTIN, CUSTOM, GRANTED, startServer } from './server.mjs';

const APP_ID = 'latchkey-http-tests'; // accepted and ignored by latchkey
const KEY_ID = /^lki_[0-9A-Za-z]{16}$/;
const SECRET = /^[0-9A-Za-z]{49}$/;

let server;
let api; // Basic <partner key id>:<partner key secret>
let connect; // Connect client with the partner key, to cross-check

before(async () => {
  server = await startServer();
  api = sunshineApi({ basic: [server.partnerKeyId, server.partnerKeySecret] });
  connect = integrationKeysClient(server.httpUrl, { sid: server.partnerKey });
});

after(async () => {
  await server?.stop();
});

function sunshineApi({ basic, bearer } = {}) {
  const client = new Sunshine.ApiClient();
  client.basePath = server.httpUrl; // no /v2: the generated paths start with it
  if (basic) {
    client.authentications.basicAuth.username = basic[0];
    client.authentications.basicAuth.password = basic[1];
  }
  if (bearer) client.authentications.bearerAuth.accessToken = bearer;
  return new Sunshine.CustomIntegrationApiKeysApi(client);
}

/** The rejection of a generated-client call, checked against the Sunshine error document. */
async function sunshineError(promise, status, code, title) {
  let err;
  await assert.rejects(promise, (e) => {
    err = e;
    return true;
  });
  assert.ok(!(err instanceof Error) && err.error instanceof Error,
    `an HTTP error from the generated client, got ${err?.stack ?? err?.error?.stack ?? JSON.stringify(err)}`);
  assert.equal(err.status, status, `HTTP status (${err.error.message}; body ${err.response?.text})`);
  assert.equal(err.error.status, status);
  assert.equal(err.response.type, 'application/json', 'errors are JSON (else the client has no body)');
  assert.ok(Array.isArray(err.body.errors) && err.body.errors.length > 0, `{"errors": [...]}, got ${err.response.text}`);
  assert.equal(err.body.errors[0].code, code);
  if (title instanceof RegExp) assert.match(err.body.errors[0].title, title);
  else if (title !== undefined) assert.equal(err.body.errors[0].title, title);
  return err;
}

/** A successful call's { data, response }, checked for status and JSON. */
async function ok(promise, status) {
  const result = await promise;
  assert.equal(result.response.status, status);
  assert.equal(result.response.type, 'application/json', 'answers are JSON (else the client models come back empty)');
  return result;
}

test('create (201), get, list, delete (200 {}) through the Sunshine client', async () => {
  const created = await ok(api.createCustomIntegrationKeyWithHttpInfo(APP_ID, CUSTOM,
    new Sunshine.IntegrationApiKey('sunshine test')), 201);
  assert.ok(created.data instanceof Sunshine.IntegrationApiKeyResponse);
  const key = created.data.key;
  assert.ok(key instanceof Sunshine.ApiKey);
  assert.match(key.id, KEY_ID);
  assert.equal(key.displayName, 'sunshine test');
  assert.match(key.secret, SECRET);
  const fullKey = `${key.id}_${key.secret}`;

  // The full key is `<id>_<secret>`, and it works: Connect verifies it.
  const verdict = await connect.verifyIntegrationKey({ apiKey: fullKey, endpoint: GRANTED });
  assert.equal(Decision[verdict.decision], 'ALLOWED');
  assert.equal(verdict.keyId, key.id);
  assert.equal(verdict.integration, CUSTOM);

  const got = await ok(api.getCustomIntegrationKeyWithHttpInfo('another-app', CUSTOM, key.id), 200);
  assert.equal(got.data.key.id, key.id);
  assert.equal(got.data.key.displayName, 'sunshine test');
  assert.equal(got.data.key.secret, undefined, 'the secret only on create');
  assert.ok(!('secret' in got.response.body.key));

  const listed = await ok(api.listCustomIntegrationKeysWithHttpInfo(APP_ID, CUSTOM), 200);
  assert.ok(listed.data instanceof Sunshine.IntegrationApiKeyListResponse);
  const mine = listed.data.keys.find((k) => k.id === key.id);
  assert.ok(mine, 'the new key is listed');
  assert.equal(mine.displayName, 'sunshine test');
  for (const raw of listed.response.body.keys) assert.ok(!('secret' in raw), 'no secret in a list');

  // The same key seen through Connect.
  const viaConnect = await connect.getIntegrationKey({ integration: CUSTOM, keyId: key.id });
  assert.equal(viaConnect.key.displayName, 'sunshine test');

  const deleted = await ok(api.deleteCustomIntegrationKeyWithHttpInfo(APP_ID, CUSTOM, key.id), 200);
  assert.deepEqual(JSON.parse(deleted.response.text), {});
  assert.equal(deleted.data, '{}', 'the generated client hands back an empty object as its text');

  await sunshineError(api.getCustomIntegrationKey(APP_ID, CUSTOM, key.id), 404, 'not_found', `Key '${key.id}' not found`);
  const remaining = await api.listCustomIntegrationKeys(APP_ID, CUSTOM);
  assert.ok(!remaining.keys.some((k) => k.id === key.id), 'gone from the list');
  const gone = await connect.verifyIntegrationKey({ apiKey: fullKey, endpoint: GRANTED });
  assert.equal(Decision[gone.decision], 'INVALID');
});

test('displayName is absent when empty, and may be 100 characters', async () => {
  const bare = await ok(api.createCustomIntegrationKeyWithHttpInfo(APP_ID, CUSTOM, new Sunshine.IntegrationApiKey()), 201);
  assert.ok(!('displayName' in bare.response.body.key), `no displayName, got ${bare.response.text.replace(/"secret":"[^"]*"/, '"secret":"..."')}`);
  assert.match(bare.data.key.secret, SECRET);
  const listed = await api.listCustomIntegrationKeysWithHttpInfo(APP_ID, CUSTOM);
  const raw = listed.response.body.keys.find((k) => k.id === bare.data.key.id);
  assert.ok(raw && !('displayName' in raw));

  const long = 'x'.repeat(100);
  const created = await api.createCustomIntegrationKey(APP_ID, CUSTOM, new Sunshine.IntegrationApiKey(long));
  assert.equal(created.key.displayName, long);
  await sunshineError(api.createCustomIntegrationKey(APP_ID, CUSTOM, new Sunshine.IntegrationApiKey(`${long}x`)),
    400, 'bad_request', /^Bad request/);
});

test('a key made through Connect reads back through Sunshine without its secret', async () => {
  const created = await connect.createIntegrationKey({ integration: CUSTOM, displayName: 'from connect' });
  const got = await api.getCustomIntegrationKey(APP_ID, CUSTOM, created.key.keyId);
  assert.equal(got.key.id, created.key.keyId);
  assert.equal(got.key.displayName, 'from connect');
  assert.equal(got.key.secret, undefined);
  assert.equal(created.apiKey.slice(created.key.keyId.length + 1).length, 49);
});

test('Bearer <partner key> is accepted too', async () => {
  const bearer = sunshineApi({ bearer: server.partnerKey });
  const listed = await bearer.listCustomIntegrationKeys(APP_ID, CUSTOM);
  assert.ok(Array.isArray(listed.keys));
});

test('a wrong secret, or none, is 401 unauthorized', async () => {
  const wrongSecret = 'A'.repeat(49);
  const wrong = sunshineApi({ basic: [server.partnerKeyId, wrongSecret] });
  const err = await sunshineError(wrong.listCustomIntegrationKeys(APP_ID, CUSTOM), 401, 'unauthorized', 'Invalid credentials');
  assert.ok(!err.response.text.includes(wrongSecret), 'the error echoes no secret');
  await sunshineError(wrong.createCustomIntegrationKey(APP_ID, CUSTOM, new Sunshine.IntegrationApiKey('x')),
    401, 'unauthorized', 'Invalid credentials');
  await sunshineError(sunshineApi().listCustomIntegrationKeys(APP_ID, CUSTOM), 401, 'unauthorized', 'Invalid credentials');
});

test('an unknown key or integration is 404 not_found', async () => {
  const unknown = 'lki_0000000000000000';
  await sunshineError(api.getCustomIntegrationKey(APP_ID, CUSTOM, unknown), 404, 'not_found', `Key '${unknown}' not found`);
  await sunshineError(api.deleteCustomIntegrationKey(APP_ID, CUSTOM, unknown), 404, 'not_found', `Key '${unknown}' not found`);
  await sunshineError(api.listCustomIntegrationKeys(APP_ID, 'nope'), 404, 'not_found', "Integration 'nope' not found");
  await sunshineError(api.createCustomIntegrationKey(APP_ID, 'nope', new Sunshine.IntegrationApiKey()),
    404, 'not_found', "Integration 'nope' not found");
});

test('a builtin integration is 400 bad_request', async () => {
  await sunshineError(api.createCustomIntegrationKey(APP_ID, BUILTIN, new Sunshine.IntegrationApiKey('x')),
    400, 'bad_request', 'API keys are available only for custom integrations');
});
