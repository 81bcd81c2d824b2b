// A thin promise wrapper over the @grpc/grpc-js clients of latchkey's services.
// Each method sends the request object as given (camelCase fields, see the
// generated types), attaches the credential and a deadline, resolves with the
// response object and rejects with a typed LatchkeyError.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { toLatchkeyError } from './errors';
import type { HealthClient } from './gen/grpc/health/v1/Health';
import type { HealthCheckResponse__Output } from './gen/grpc/health/v1/HealthCheckResponse';
import type { AuditServiceClient } from './gen/latchkey/v1/AuditService';
import type { CheckClientHealthRequest } from './gen/latchkey/v1/CheckClientHealthRequest';
import type { CheckClientHealthResponse__Output } from './gen/latchkey/v1/CheckClientHealthResponse';
import type { CheckServiceHealthResponse__Output } from './gen/latchkey/v1/CheckServiceHealthResponse';
import type { ClientConfigurationServiceClient } from './gen/latchkey/v1/ClientConfigurationService';
import type { ConfigureRequest } from './gen/latchkey/v1/ConfigureRequest';
import type { ConfigureResponse__Output } from './gen/latchkey/v1/ConfigureResponse';
import type { CreateIntegrationKeyRequest } from './gen/latchkey/v1/CreateIntegrationKeyRequest';
import type { CreateIntegrationKeyResponse__Output } from './gen/latchkey/v1/CreateIntegrationKeyResponse';
import type { DeleteIntegrationKeyRequest } from './gen/latchkey/v1/DeleteIntegrationKeyRequest';
import type { GetClientConfigurationRequest } from './gen/latchkey/v1/GetClientConfigurationRequest';
import type { GetClientConfigurationResponse__Output } from './gen/latchkey/v1/GetClientConfigurationResponse';
import type { GetIntegrationKeyRequest } from './gen/latchkey/v1/GetIntegrationKeyRequest';
import type { GetIntegrationKeyResponse__Output } from './gen/latchkey/v1/GetIntegrationKeyResponse';
import type { HealthServiceClient } from './gen/latchkey/v1/HealthService';
import type { IntegrationKeysServiceClient } from './gen/latchkey/v1/IntegrationKeysService';
import type { ListIntegrationKeysRequest } from './gen/latchkey/v1/ListIntegrationKeysRequest';
import type { ListIntegrationKeysResponse__Output } from './gen/latchkey/v1/ListIntegrationKeysResponse';
import type { VerifyIntegrationKeyRequest } from './gen/latchkey/v1/VerifyIntegrationKeyRequest';
import type { VerifyIntegrationKeyResponse__Output } from './gen/latchkey/v1/VerifyIntegrationKeyResponse';

// Must match the flags in scripts/generate.mjs, which the types describe.
const LOADER_OPTIONS: protoLoader.Options = { keepCase: false, longs: String, enums: String, defaults: true, oneofs: true };
// The package's copy of the repository's proto/ (see scripts/generate.mjs):
// dist/src/client.js -> proto/.
const PROTO_ROOT = path.resolve(__dirname, '../../proto');
// grpc.health.v1 as shipped by grpc-health-check (resolved, not imported: the
// module itself would load a server-side copy we do not need).
const GRPC_HEALTH_PROTO = require.resolve('grpc-health-check/proto/health/v1/health.proto');

type ClientConstructor<C> = new (address: string, credentials: grpc.ChannelCredentials, options?: grpc.ClientOptions) => C;
interface Services {
  latchkey: {
    v1: {
      IntegrationKeysService: ClientConstructor<IntegrationKeysServiceClient>;
      ClientConfigurationService: ClientConstructor<ClientConfigurationServiceClient>;
      HealthService: ClientConstructor<HealthServiceClient>;
      AuditService: ClientConstructor<AuditServiceClient>;
    };
  };
  grpc: { health: { v1: { Health: ClientConstructor<HealthClient> } } };
}

let services: Services | undefined;
function loadServices(): Services {
  if (!services) {
    const latchkeyProtos = fs.readdirSync(path.join(PROTO_ROOT, 'latchkey/v1'))
      .filter((f) => f.endsWith('.proto')).map((f) => `latchkey/v1/${f}`);
    services = grpc.loadPackageDefinition(
      protoLoader.loadSync([...latchkeyProtos, GRPC_HEALTH_PROTO], { ...LOADER_OPTIONS, includeDirs: [PROTO_ROOT] }),
    ) as unknown as Services;
  }
  return services;
}

export interface ClientOptions {
  /** Admin credential, sent as `sid` metadata. */
  partnerKey?: string;
  /** A client user's credential, sent as `authorization: Basic base64(user:apiKey)`; `user@client` ties the user to its client. */
  basic?: { user: string; apiKey: string };
  /** Deadline of every call, in milliseconds (default 5000). */
  timeoutMs?: number;
  /** TLS credentials; plaintext when absent. */
  credentials?: grpc.ChannelCredentials;
  /** Options of the underlying channel, e.g. `{ 'grpc.use_local_subchannel_pool': 1 }` for a connection of its own. */
  channelOptions?: grpc.ChannelOptions;
}

type Callback<Res> = (err: grpc.ServiceError | null, value?: Res) => void;
type UnaryMethod = (request: unknown, metadata: grpc.Metadata, options: grpc.CallOptions, callback: Callback<unknown>) => grpc.ClientUnaryCall;

export class LatchkeyClient {
  /** The raw generated clients, for RPCs this wrapper does not cover; use `call` to invoke them. */
  readonly integrationKeys: IntegrationKeysServiceClient;
  readonly clientConfiguration: ClientConfigurationServiceClient;
  readonly health: HealthServiceClient;
  readonly audit: AuditServiceClient;
  private readonly grpcHealth: HealthClient;
  private readonly channel: grpc.Channel;
  private readonly metadata = new grpc.Metadata();
  private readonly timeoutMs: number;

  constructor(target: string, options: ClientOptions = {}) {
    if (options.partnerKey && options.basic) throw new TypeError('give partnerKey or basic, not both');
    if (options.partnerKey) this.metadata.set('sid', options.partnerKey);
    if (options.basic) {
      const token = Buffer.from(`${options.basic.user}:${options.basic.apiKey}`).toString('base64');
      this.metadata.set('authorization', `Basic ${token}`);
    }
    this.timeoutMs = options.timeoutMs ?? 5000;
    const credentials = options.credentials ?? grpc.credentials.createInsecure();
    // One connection shared by the five service clients.
    this.channel = new grpc.Channel(target, credentials, options.channelOptions ?? {});
    const { latchkey, grpc: health } = loadServices();
    const make = <C>(Ctor: ClientConstructor<C>) => new Ctor(target, credentials, { channelOverride: this.channel });
    this.integrationKeys = make(latchkey.v1.IntegrationKeysService);
    this.clientConfiguration = make(latchkey.v1.ClientConfigurationService);
    this.health = make(latchkey.v1.HealthService);
    this.audit = make(latchkey.v1.AuditService);
    this.grpcHealth = make(health.health.v1.Health);
  }

  close(): void {
    this.channel.close();
  }

  /** Invokes one unary RPC of a raw client, e.g. `call(c.integrationKeys, 'rollIntegrationKey', {...})`. */
  call<C extends grpc.Client, Res>(client: C, method: keyof C & string, request: object): Promise<Res> {
    const fn = client[method] as unknown as UnaryMethod;
    return new Promise((resolve, reject) => {
      fn.call(client, request, this.metadata, { deadline: Date.now() + this.timeoutMs }, (err, value) =>
        err ? reject(toLatchkeyError(err)) : resolve(value as Res),
      );
    });
  }

  // IntegrationKeysService

  /** The response's `apiKey` is the full key, returned only here. */
  createIntegrationKey(request: CreateIntegrationKeyRequest): Promise<CreateIntegrationKeyResponse__Output> {
    return this.call(this.integrationKeys, 'createIntegrationKey', request);
  }
  listIntegrationKeys(request: ListIntegrationKeysRequest): Promise<ListIntegrationKeysResponse__Output> {
    return this.call(this.integrationKeys, 'listIntegrationKeys', request);
  }
  getIntegrationKey(request: GetIntegrationKeyRequest): Promise<GetIntegrationKeyResponse__Output> {
    return this.call(this.integrationKeys, 'getIntegrationKey', request);
  }
  async deleteIntegrationKey(request: DeleteIntegrationKeyRequest): Promise<void> {
    await this.call(this.integrationKeys, 'deleteIntegrationKey', request);
  }
  /** Needs no credential. Every verdict is the response's `decision`, not an error. */
  verifyIntegrationKey(request: VerifyIntegrationKeyRequest): Promise<VerifyIntegrationKeyResponse__Output> {
    return this.call(this.integrationKeys, 'verifyIntegrationKey', request);
  }

  // ClientConfigurationService

  configure(request: ConfigureRequest): Promise<ConfigureResponse__Output> {
    return this.call(this.clientConfiguration, 'configure', request);
  }
  /** Secrets are redacted: `ClientCredentials.*` settings have `secret` set and an empty value. */
  getClientConfiguration(request: GetClientConfigurationRequest): Promise<GetClientConfigurationResponse__Output> {
    return this.call(this.clientConfiguration, 'getClientConfiguration', request);
  }

  // HealthService (configuration health)

  checkClientHealth(request: CheckClientHealthRequest): Promise<CheckClientHealthResponse__Output> {
    return this.call(this.health, 'checkClientHealth', request);
  }
  checkServiceHealth(): Promise<CheckServiceHealthResponse__Output> {
    return this.call(this.health, 'checkServiceHealth', {});
  }

  // grpc.health.v1.Health (the probe protocol)

  /** The serving status, e.g. 'SERVING'; service '' is the whole server. */
  async healthCheck(service = ''): Promise<HealthCheckResponse__Output['status']> {
    const response = await this.call<HealthClient, HealthCheckResponse__Output>(this.grpcHealth, 'check', { service });
    return response.status;
  }
}
