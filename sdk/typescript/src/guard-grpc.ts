// @grpc/grpc-js server side: wrap a service implementation so that every call
// is checked by a KeyGuard before it reaches the handler.
import * as grpc from '@grpc/grpc-js';

import { KeyGuard, KeyRefusedError, keyFromAuthorization, type VerifiedCaller } from './guard';

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
  if (refused.retryAfterMs !== undefined) metadata.set('retry-after-ms', String(refused.retryAfterMs));
  return { code: refused.code, details: refused.details, metadata };
}

type AnyCall = grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerReadableStream<unknown, unknown>
  | grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>;

/**
 * Returns `implementation` with every handler of `service` guarded: the key
 * (`authorization: Bearer <key>`, or Basic `<key id>:<rest>`) is checked for
 * the endpoint `pkg.Service/Method` (the method path without its leading
 * slash), with the peer's address as the caller. Allowed calls reach the
 * original handler with `verifiedCaller(call)` set; refused calls are
 * answered with the refusal's status (RESOURCE_EXHAUSTED with a
 * `retry-after-ms` trailer).
 */
export function guardService<I extends grpc.UntypedServiceImplementation>(
  guard: KeyGuard, service: grpc.ServiceDefinition, implementation: I,
): I {
  const guarded: grpc.UntypedServiceImplementation = { ...implementation };
  for (const [name, method] of Object.entries(service)) {
    const original = implementation[name] as ((...args: unknown[]) => void) | undefined;
    if (typeof original !== 'function') continue;
    const endpoint = method.path.replace(/^\//, '');
    const check = (call: AnyCall) =>
      guard.check(keyFromAuthorization(call.metadata.get('authorization')[0] as string | Buffer | undefined),
        endpoint, call.getPeer());
    if (!method.responseStream) {
      // unary and client streaming: answer through the callback
      guarded[name] = ((call: AnyCall, callback: grpc.sendUnaryData<unknown>) => {
        check(call).then(
          (caller) => {
            (call as unknown as { [VERIFIED_CALLER]: VerifiedCaller })[VERIFIED_CALLER] = caller;
            original.call(implementation, call, callback);
          },
          (err) => callback(refusal(err)),
        );
      }) as grpc.UntypedHandleCall;
    } else {
      // server streaming and bidi: an 'error' ends the call with that status
      guarded[name] = ((call: grpc.ServerWritableStream<unknown, unknown>) => {
        check(call).then(
          (caller) => {
            (call as unknown as { [VERIFIED_CALLER]: VerifiedCaller })[VERIFIED_CALLER] = caller;
            original.call(implementation, call);
          },
          (err) => call.emit('error', refusal(err)),
        );
      }) as grpc.UntypedHandleCall;
    }
  }
  return guarded as I;
}
