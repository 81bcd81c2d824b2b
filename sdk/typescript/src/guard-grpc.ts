// @grpc/grpc-js server side: wrap a service implementation so that every call
// is checked by a KeyGuard before it reaches the handler.
import * as grpc from '@grpc/grpc-js';

import { KeyGuard, KeyRefusedError, keyFromAuthorization, retryInfoStatusDetails, type VerifiedCaller } from './guard';

/** Where guardService puts the VerifiedCaller on the call object. */
export const VERIFIED_CALLER: unique symbol = Symbol('latchkey.verifiedCaller');

/** The caller a guarded handler's call was allowed for (undefined outside guardService). */
export function verifiedCaller(call: object): VerifiedCaller | undefined {
  return (call as { [VERIFIED_CALLER]?: VerifiedCaller })[VERIFIED_CALLER];
}

function refusal(err: unknown): Partial<grpc.StatusObject> {
  const refused = err instanceof KeyRefusedError
    ? err
    : new KeyRefusedError(grpc.status.UNAVAILABLE, 'Key verification is unavailable');
  const metadata = new grpc.Metadata();
  if (refused.retryAfterMs !== undefined) {
    // google.rpc.RetryInfo, as latchkey itself answers, and a plain trailer.
    metadata.set('grpc-status-details-bin', retryInfoStatusDetails(refused.code, refused.details, refused.retryAfterMs));
    metadata.set('retry-after-ms', String(refused.retryAfterMs));
  }
  return { code: refused.code, details: refused.details, metadata };
}

/** What a caller gets when a guarded handler throws: nothing of the error itself. */
const HANDLER_FAILED: Partial<grpc.StatusObject> = { code: grpc.status.INTERNAL, details: 'Internal error' };

export interface GuardServiceOptions {
  /**
   * Told about a handler that threw (or whose returned promise rejected);
   * the caller gets INTERNAL "Internal error". Default: console.error.
   */
  onError?: (err: unknown, endpoint: string) => void;
}

function reportError(err: unknown, endpoint: string): void {
  console.error(`latchkey guardService: the handler of ${endpoint} failed; answered INTERNAL:`, err);
}

/** Runs `handler`, handing a synchronous throw or a rejected returned promise to `failed`. */
function runHandler(handler: () => unknown, failed: (err: unknown) => void): void {
  let result: unknown;
  try {
    result = handler();
  } catch (err) {
    failed(err);
    return;
  }
  if (result && typeof (result as PromiseLike<unknown>).then === 'function') {
    (result as PromiseLike<unknown>).then(undefined, failed);
  }
}

type AnyCall = grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerReadableStream<unknown, unknown>
  | grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>;

/**
 * Returns `implementation` with every handler of `service` guarded: the key
 * (`authorization: Bearer <key>`, or Basic `<key id>:<rest>`) is checked for
 * the endpoint `pkg.Service/Method` (the method path without its leading
 * slash), with the peer's address as the caller. Allowed calls reach the
 * original handler with `verifiedCaller(call)` set; refused calls are
 * answered with the refusal's status (RESOURCE_EXHAUSTED with
 * google.rpc.RetryInfo and a `retry-after-ms` trailer). A handler that
 * throws ends its call with INTERNAL "Internal error" (see
 * `options.onError`).
 */
export function guardService<I extends grpc.UntypedServiceImplementation>(
  guard: KeyGuard, service: grpc.ServiceDefinition, implementation: I, options: GuardServiceOptions = {},
): I {
  const onError = options.onError ?? reportError;
  const guarded: grpc.UntypedServiceImplementation = { ...implementation };
  for (const [name, method] of Object.entries(service)) {
    const original = implementation[name] as ((...args: unknown[]) => void) | undefined;
    if (typeof original !== 'function') continue;
    const endpoint = method.path.replace(/^\//, '');
    const report = (err: unknown) => {
      try {
        onError(err, endpoint);
      } catch {
        // a failing reporter must not keep the caller from its answer
      }
    };
    const check = (call: AnyCall) =>
      guard.check(keyFromAuthorization(call.metadata.get('authorization')[0] as string | Buffer | undefined),
        endpoint, call.getPeer());
    if (!method.responseStream) {
      // unary and client streaming: answer through the callback
      guarded[name] = ((call: AnyCall, callback: grpc.sendUnaryData<unknown>) => {
        let answered = false;
        const answer: grpc.sendUnaryData<unknown> = (...args) => {
          if (answered) return;
          answered = true;
          callback(...args);
        };
        const failed = (err: unknown) => {
          report(err);
          answer(HANDLER_FAILED);
        };
        runHandler(() => check(call).then(
          (caller) => {
            (call as unknown as { [VERIFIED_CALLER]: VerifiedCaller })[VERIFIED_CALLER] = caller;
            runHandler(() => original.call(implementation, call, answer), failed);
          },
          (err) => answer(refusal(err)),
        ), failed);
      }) as grpc.UntypedHandleCall;
    } else {
      // server streaming and bidi: an 'error' ends the call with that status
      guarded[name] = ((call: grpc.ServerWritableStream<unknown, unknown>) => {
        const failed = (err: unknown) => {
          report(err);
          // Once the handler ended the call there is no status left to send.
          if (!call.writableEnded) call.emit('error', HANDLER_FAILED);
        };
        runHandler(() => check(call).then(
          (caller) => {
            (call as unknown as { [VERIFIED_CALLER]: VerifiedCaller })[VERIFIED_CALLER] = caller;
            runHandler(() => original.call(implementation, call), failed);
          },
          (err) => call.emit('error', refusal(err)),
        ), failed);
      }) as grpc.UntypedHandleCall;
    }
  }
  return guarded as I;
}
