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
  /**
   * Told about an `endpoint` function that threw, or a handler (what
   * `next()` runs) that threw or whose returned promise rejected; the client
   * gets 500 `{"error": 500, "message": "Internal error"}` (or, once the
   * response has begun, a reset connection) and the handler is not run.
   * Default: console.error. (Express catches its own handlers' errors, so
   * handler errors reach this only behind a node:http server.)
   */
  onError?: (err: unknown, req: GuardedRequest) => void;
}

function reportError(err: unknown, req: GuardedRequest): void {
  console.error(`latchkey keyGuardMiddleware: ${req.method ?? 'GET'} ${(req.url ?? '/').split('?')[0]} failed; answered 500:`, err);
}

function defaultEndpoint(req: GuardedRequest): string {
  const path = req.path ?? (req.url ?? '/').split('?')[0];
  return `http/${req.method ?? 'GET'}${path}`;
}

/**
 * `(req, res, next)`: sets `req.latchkey` to the VerifiedCaller and calls
 * `next()` when the key (`Authorization: Bearer <key>`, or Basic
 * `<key id>:<rest>`) is allowed; else answers 401, 403, 429 (with
 * Retry-After) or 503 with `{"error": <status>, "message": ...}`. An
 * `endpoint` function or a handler (run by `next()`) that throws gets the
 * client a 500 (see `options.onError`).
 */
export function keyGuardMiddleware(guard: KeyGuard, options: KeyGuardMiddlewareOptions = {}) {
  const endpointOf = options.endpoint ?? defaultEndpoint;
  const onError = options.onError ?? reportError;
  return (req: GuardedRequest, res: ServerResponse, next: (err?: unknown) => void): void => {
    const failed = (err: unknown) => {
      try {
        onError(err, req);
      } catch {
        // a failing reporter must not keep the client from its answer
      }
      if (!res.headersSent) {
        res.writeHead(500, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: 500, message: 'Internal error' }));
      } else if (!res.writableEnded) {
        res.destroy(); // a cut-off response, not one that looks complete
      }
    };
    let endpoint: string;
    try {
      endpoint = endpointOf(req);
    } catch (err) {
      // Not next(err): behind node:http, next is the handler itself, which
      // would then run unverified.
      failed(err);
      return;
    }
    guard.check(keyFromAuthorization(req.headers.authorization), endpoint, req.socket.remoteAddress).then(
      (caller) => {
        req.latchkey = caller;
        const result: unknown = next();
        // An async handler behind a plain node:http server: its rejection is ours to answer.
        if (result && typeof (result as PromiseLike<unknown>).then === 'function') {
          (result as PromiseLike<unknown>).then(undefined, failed);
        }
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
    ).then(undefined, failed); // next() threw (or, unlikely, answering the refusal did)
  };
}
