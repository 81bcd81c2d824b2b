// A Connect-ES v2 client for latchkey's HTTP listener (Connect protocol,
// unary, JSON over HTTP/1.1), from the types `npm run generate` writes into
// gen/ (buf.gen.yaml; gen/ is not committed).
import { createClient } from '@connectrpc/connect';
import { createConnectTransport } from '@connectrpc/connect-node';

let generated;
try {
  generated = await import('./gen/latchkey/v1/integration_keys_pb.js');
} catch (e) {
  if (e?.code === 'ERR_MODULE_NOT_FOUND') {
    throw new Error('tests/http-clients/gen/ is missing: run `npm run generate` there '
      + '(scripts/http-clients-check.sh does) to generate the Connect types from proto/');
  }
  throw e;
}
export const { IntegrationKeysService, Decision, IntegrationKeyState } = generated;

/**
 * An IntegrationKeysService client; `headers` (e.g. { sid: partnerKey }) are
 * set on every request by an interceptor.
 */
export function integrationKeysClient(baseUrl, headers = {}) {
  const transport = createConnectTransport({
    baseUrl,
    httpVersion: '1.1',
    useBinaryFormat: false,
    interceptors: [(next) => async (req) => {
      for (const [name, value] of Object.entries(headers)) req.header.set(name, value);
      return next(req);
    }],
  });
  return createClient(IntegrationKeysService, transport);
}
