// GET /openapi.json: API.md "HTTP (second round)" item 5, an OpenAPI 3.1
// document of routes 2-4, served without credentials. (scripts/
// http-clients-check.sh also lints it with Redocly.) Path templates are
// compared with their parameter names blanked out: `{integration}` and
// `{integration_name}` are the same route.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { startServer } from './server.mjs';

let server;

before(async () => {
  server = await startServer();
});

after(async () => {
  await server?.stop();
});

const EXPECTED = {
  // 2. seed 000
  '/integrations/{}/keys': ['get', 'post'],
  '/integrations/{}/keys/{}': ['delete', 'get'],
  // 3. seed 001
  '/configure': ['post'],
  '/configureSettings/{}': ['post'],
  '/setUserCredentials/{}': ['post'],
  '/health/{}': ['get'],
  // 4. Sunshine Conversations v2
  '/v2/apps/{}/integrations/{}/keys': ['get', 'post'],
  '/v2/apps/{}/integrations/{}/keys/{}': ['delete', 'get'],
};
const METHODS = new Set(['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']);

test('openapi.json is an OpenAPI 3.1 document of the HTTP routes', async () => {
  const res = await fetch(`${server.httpUrl}/openapi.json`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^application\/json/);
  const doc = await res.json();
  assert.match(doc.openapi, /^3\.1\.\d+$/);
  assert.equal(typeof doc.info?.title, 'string');
  assert.equal(typeof doc.info?.version, 'string');

  const routes = {};
  for (const [template, item] of Object.entries(doc.paths ?? {})) {
    const blank = template.replace(/\{[^}]*\}/g, '{}');
    routes[blank] = [...(routes[blank] ?? []), ...Object.keys(item).filter((k) => METHODS.has(k))].sort();
  }
  for (const [route, methods] of Object.entries(EXPECTED)) {
    assert.ok(routes[route], `${route} is documented (documented: ${Object.keys(routes).join(', ')})`);
    for (const method of methods) assert.ok(routes[route].includes(method), `${method.toUpperCase()} ${route} is documented`);
  }
});
