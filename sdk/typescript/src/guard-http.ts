// Node HTTP (and Express) middleware: (req, res, next) checked by a KeyGuard.
import type { IncomingMessage, ServerResponse } from 'node:http';

import { KeyGuard, KeyRefusedError, keyFromAuthorization, type VerifiedCaller } from './guard';

/** The request as the middleware sees it (Express adds `path`). */
export type GuardedRequest = IncomingMessage & { path?: string; latchkey?: VerifiedCaller };

export interface KeyGuardMiddlewareOptions {
  /**
   * The endpoint to verify for a request. Default: `http/<METHOD><path>`
   * (e.g. `http/GET/outline`, grantable with the prefix `http/GET/*`; grants
   * may hold only letters, digits, '.', '_', '/' and a final '*').
   */
  endpoint?: (req: GuardedRequest) => string;
}

function defaultEndpoint(req: GuardedRequest): string {
  const path = req.path ?? (req.url ?? '/').split('?')[0];
  return `http/${req.method ?? 'GET'}${path}`;
}

/**
 * `(req, res, next)`: sets `req.latchkey` to the VerifiedCaller and calls
 * `next()` when the key (`Authorization: Bearer <key>`, or Basic
 * `<key id>:<rest>`) is allowed; else answers 401, 403, 429 (with
 * Retry-After) or 503 with `{"error": <status>, "message": ...}`.
 */
export function keyGuardMiddleware(guard: KeyGuard, options: KeyGuardMiddlewareOptions = {}) {
  const endpointOf = options.endpoint ?? defaultEndpoint;
  return (req: GuardedRequest, res: ServerResponse, next: (err?: unknown) => void): void => {
    let endpoint: string;
    try {
      endpoint = endpointOf(req);
    } catch (err) {
      next(err);
      return;
    }
    guard.check(keyFromAuthorization(req.headers.authorization), endpoint, req.socket.remoteAddress).then(
      (caller) => {
        req.latchkey = caller;
        next();
      },
      (err) => {
        const refused = err instanceof KeyRefusedError
          ? err
          : new KeyRefusedError(14 /* UNAVAILABLE */, 'Key verification is unavailable');
        const status = refused.httpStatus;
        const headers: Record<string, string> = { 'content-type': 'application/json' };
        if (status === 401) headers['www-authenticate'] = 'Bearer';
        if (refused.retryAfterMs !== undefined) headers['retry-after'] = String(Math.max(1, Math.ceil(refused.retryAfterMs / 1000)));
        if (res.headersSent) {
          res.end();
          return;
        }
        res.writeHead(status, headers);
        res.end(JSON.stringify({ error: status, message: refused.details }));
      },
    );
  };
}
