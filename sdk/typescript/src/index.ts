// @latchkey/client: a promise client for latchkey, the gRPC API-key service.
export { LatchkeyClient, type ClientOptions } from './client';
export * from './errors';
// Message and enum types generated from proto/latchkey/v1 (see scripts/generate.mjs).
export type { CreateIntegrationKeyResponse__Output as CreateIntegrationKeyResponse } from './gen/latchkey/v1/CreateIntegrationKeyResponse';
export type { IntegrationKey__Output as IntegrationKey } from './gen/latchkey/v1/IntegrationKey';
export type { ListIntegrationKeysResponse__Output as ListIntegrationKeysResponse } from './gen/latchkey/v1/ListIntegrationKeysResponse';
export type { VerifyIntegrationKeyResponse__Output as VerifyIntegrationKeyResponse } from './gen/latchkey/v1/VerifyIntegrationKeyResponse';
export type { Decision__Output as Decision } from './gen/latchkey/v1/Decision';
export type { ClientConfiguration__Output as ClientConfiguration } from './gen/latchkey/v1/ClientConfiguration';
export type { CheckClientHealthResponse__Output as CheckClientHealthResponse } from './gen/latchkey/v1/CheckClientHealthResponse';
export type { CheckServiceHealthResponse__Output as CheckServiceHealthResponse } from './gen/latchkey/v1/CheckServiceHealthResponse';
// Resource-server guard (see src/guard.ts).
export { KeyGuard, KeyRefusedError, keyFromAuthorization, peerAddress, type KeyGuardOptions, type KeyGuardStats, type VerifiedCaller } from './guard';
export { guardService, verifiedCaller, VERIFIED_CALLER, type GuardServiceOptions } from './guard-grpc';
export { keyGuardMiddleware, type GuardedRequest, type KeyGuardMiddlewareOptions } from './guard-http';
