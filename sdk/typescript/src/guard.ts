// A guard for resource servers: verify the caller's integration key against
// latchkey before the call reaches the service. Mirrors sdk/rust/src/guard.rs.
//
// Allowed verdicts are cached locally, keyed by an HMAC-SHA256 (per-process
// random key) of key + "\0" + endpoint; denials are not cached, nor are
// verdicts for keys with a rate limit (latchkey must count every use). With
// `watch: true` the guard follows latchkey's WatchKeyChanges and evicts a key
// (or an integration, or everything on RESET) the moment latchkey says it
// changed, so verdicts may be kept up to an hour while that stream is up;
// while it is down they live only `cacheTtlMs`. The stream asks for
// heartbeats: one that stays silent for three heartbeat intervals is stalled
// (a dead connection nobody closed) and treated as down, and the guard
// reconnects on a new connection, with exponential backoff.
import * as grpc from '@grpc/grpc-js';
import { createHmac, randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import * as protobuf from 'protobufjs';

import { LatchkeyClient } from './client';
import { LatchkeyError } from './errors';
import type { VerifyIntegrationKeyResponse__Output } from './gen/latchkey/v1/VerifyIntegrationKeyResponse';
import type { WatchKeyChangesResponse__Output } from './gen/latchkey/v1/WatchKeyChangesResponse';

/** Who called: the integration and key latchkey allowed. */
export interface VerifiedCaller {
  integration: string;
  keyId: string;
}

/**
 * A refused call: `code` is the gRPC status to answer, `httpStatus` the HTTP
 * one; `retryAfterMs` is set with RESOURCE_EXHAUSTED.
 */
export class KeyRefusedError extends LatchkeyError {
  constructor(code: grpc.status, details: string, readonly retryAfterMs?: number) {
    super(code, details);
  }

  get httpStatus(): number {
    switch (this.code) {
      case grpc.status.UNAUTHENTICATED: return 401;
      case grpc.status.PERMISSION_DENIED: return 403;
      case grpc.status.RESOURCE_EXHAUSTED: return 429;
      default: return 503;
    }
  }
}

export interface KeyGuardOptions {
  /**
   * How long an allowed (key, endpoint) is trusted without asking latchkey
   * again while no change stream says otherwise (default 5000). This bounds
   * how long a deleted key keeps working here. 0 disables the cache.
   */
  cacheTtlMs?: number;
  /**
   * Follow latchkey's WatchKeyChanges and evict changed keys at once, keeping
   * verdicts up to an hour while the stream is up.
   */
  watch?: boolean;
  /** Authenticates the change stream (sent as `sid`); omit when this server is in latchkey's --trusted-peers. */
  partnerKey?: string;
  /** Deadline of each verification, in milliseconds (default 5000). */
  timeoutMs?: number;
  /** TLS credentials to latchkey; plaintext when absent. */
  credentials?: grpc.ChannelCredentials;
  /**
   * First delay before re-opening a broken change stream (default 500); it
   * doubles with every attempt that does not get the stream up, up to
   * `maxReconnectDelayMs`, with jitter (each wait is 50-100% of the delay).
   */
  reconnectDelayMs?: number;
  /** Longest delay between attempts to re-open the change stream (default 30000). */
  maxReconnectDelayMs?: number;
  /**
   * With `watch`: the heartbeat interval asked of latchkey (default 5000;
   * 1000 to 300000). latchkey then sends HEARTBEAT whenever the stream has
   * been quiet this long; a stream silent for three intervals is taken for
   * stalled: cached verdicts are dropped, the stream is down (verdicts live
   * only `cacheTtlMs`) and is re-opened on a new connection. 0: no
   * heartbeats and no stall detection (for a latchkey that predates them).
   */
  heartbeatIntervalMs?: number;
}

/** Counters of a KeyGuard since it was made (see `KeyGuard.stats`). */
export interface KeyGuardStats {
  /** VerifyIntegrationKey calls made to latchkey (cache misses). */
  verifies: number;
  /** Checks answered from the cache. */
  cacheHits: number;
  /** HEARTBEAT messages received on the change stream. */
  heartbeats: number;
  /** Change streams given up as stalled (no message for three heartbeat intervals). */
  stalls: number;
}

interface CachedAllow {
  caller: VerifiedCaller;
  /** Milliseconds since the epoch; undefined: never expires. */
  expireTime?: number;
  cachedAt: number;
}

/** How long a watching guard keeps a verdict while the stream is up. */
const WATCHED_TTL_MS = 3_600_000;
const MAX_ENTRIES = 10_000;
/** A stream without any message for this many heartbeat intervals is stalled. */
const STALL_INTERVALS = 3;
const MIN_HEARTBEAT_MS = 1000;
const MAX_HEARTBEAT_MS = 300_000;

// google.rpc.Status / RetryInfo, just what we read from latchkey's
// RESOURCE_EXHAUSTED and send in our own (grpc-status-details-bin).
const rpc = protobuf.Root.fromJSON({
  nested: {
    Status: {
      fields: { code: { type: 'int32', id: 1 }, message: { type: 'string', id: 2 }, details: { rule: 'repeated', type: 'Any', id: 3 } },
    },
    Any: { fields: { typeUrl: { type: 'string', id: 1 }, value: { type: 'bytes', id: 2 } } },
    RetryInfo: { fields: { retryDelay: { type: 'Duration', id: 1 } } },
    Duration: { fields: { seconds: { type: 'int64', id: 1 }, nanos: { type: 'int32', id: 2 } } },
  },
});
const RpcStatus = rpc.lookupType('Status');
const RetryInfo = rpc.lookupType('RetryInfo');

/** A google.protobuf.Duration of `ms` milliseconds. */
function duration(ms: number): { seconds: number; nanos: number } {
  const whole = Math.max(0, Math.round(ms));
  return { seconds: Math.floor(whole / 1000), nanos: (whole % 1000) * 1_000_000 };
}

/**
 * A serialized google.rpc.Status carrying google.rpc.RetryInfo, for the
 * `grpc-status-details-bin` trailer of a RESOURCE_EXHAUSTED answer.
 */
export function retryInfoStatusDetails(code: grpc.status, message: string, retryAfterMs: number): Buffer {
  const retryInfo = RetryInfo.encode(RetryInfo.fromObject({ retryDelay: duration(retryAfterMs) })).finish();
  const status = RpcStatus.fromObject({
    code, message, details: [{ typeUrl: 'type.googleapis.com/google.rpc.RetryInfo', value: retryInfo }],
  });
  return Buffer.from(RpcStatus.encode(status).finish());
}

function durationMs(d: { seconds?: unknown; nanos?: unknown } | null | undefined): number | undefined {
  if (!d) return undefined;
  return Number(d.seconds ?? 0) * 1000 + Math.floor(Number(d.nanos ?? 0) / 1e6);
}

/** The google.rpc.RetryInfo delay in a failed call's `grpc-status-details-bin`, in milliseconds. */
function retryDelayMs(metadata: grpc.Metadata | undefined): number | undefined {
  const raw = metadata?.get('grpc-status-details-bin')[0];
  if (!Buffer.isBuffer(raw)) return undefined;
  try {
    const status = RpcStatus.toObject(RpcStatus.decode(raw), { longs: String }) as { details?: { typeUrl: string; value: Uint8Array }[] };
    for (const d of status.details ?? []) {
      if (d.typeUrl.endsWith('/google.rpc.RetryInfo')) {
        const info = RetryInfo.toObject(RetryInfo.decode(d.value), { longs: String }) as { retryDelay?: { seconds?: string; nanos?: number } };
        return durationMs(info.retryDelay);
      }
    }
  } catch {
    // undecodable details: the default delay applies
  }
  return undefined;
}

/**
 * The key in an `authorization` header: `Bearer <key>`, or Basic
 * base64(`<key id>:<rest>`) meaning `<key id>_<rest>`.
 */
export function keyFromAuthorization(value: string | string[] | Buffer | undefined): string | undefined {
  if (Array.isArray(value)) value = value[0];
  if (value === undefined) return undefined;
  const header = (Buffer.isBuffer(value) ? value.toString('utf8') : value).trim();
  const space = header.indexOf(' ');
  if (space < 0) return undefined;
  const scheme = header.slice(0, space).toLowerCase();
  const rest = header.slice(space + 1).trim();
  if (scheme === 'bearer') return rest || undefined;
  if (scheme === 'basic') {
    const decoded = Buffer.from(rest, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon <= 0) return undefined;
    return `${decoded.slice(0, colon)}_${decoded.slice(colon + 1)}`;
  }
  return undefined;
}

/** The IP address in a peer string such as `127.0.0.1:5000`, `[::1]:5000` or `ipv4:...`. */
export function peerAddress(peer: string | undefined): string | undefined {
  if (!peer) return undefined;
  let p = peer.replace(/^ipv[46]:/, '');
  if (p.startsWith('[')) {
    const end = p.indexOf(']');
    p = end > 0 ? p.slice(1, end) : p;
  } else if (!isIP(p)) {
    const colon = p.lastIndexOf(':');
    if (colon > 0) p = p.slice(0, colon);
  }
  if (p.toLowerCase().startsWith('::ffff:') && isIP(p.slice(7)) === 4) p = p.slice(7);
  return isIP(p) ? p : undefined;
}

export class KeyGuard {
  /** Replaced by a new one (a new connection) when the change stream stalls. */
  private client: LatchkeyClient;
  private readonly target: string;
  private readonly credentials?: grpc.ChannelCredentials;
  // ECMAScript-private: util.inspect and console.log do not show them.
  readonly #macKey = randomBytes(32);
  private readonly allowed = new Map<string, CachedAllow>();
  private readonly ttlMs: number;
  private readonly timeoutMs: number;
  private readonly watching: boolean;
  readonly #partnerKey?: string;
  private readonly reconnectDelayMs: number;
  private readonly maxReconnectDelayMs: number;
  private readonly heartbeatMs: number;
  /** Failed attempts to get the change stream up since it was last up: the backoff exponent. */
  private reconnectAttempts = 0;
  /** Bumped by every change applied: a verdict asked for before a change is not cached after it. */
  private changesSeen = 0;
  /** Whether the change stream is up (after its first RESET). */
  private up = false;
  private closed = false;
  private stream?: grpc.ClientReadableStream<WatchKeyChangesResponse__Output>;
  private reconnectTimer?: NodeJS.Timeout;
  /** Fires when the current stream has been silent for STALL_INTERVALS heartbeat intervals. */
  private stallTimer?: NodeJS.Timeout;
  readonly #stats: KeyGuardStats = { verifies: 0, cacheHits: 0, heartbeats: 0, stalls: 0 };

  /** Verifies through latchkey at `target` (host:port). */
  constructor(target: string, options: KeyGuardOptions = {}) {
    this.ttlMs = Math.max(0, options.cacheTtlMs ?? 5000);
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.watching = options.watch ?? false;
    this.#partnerKey = options.partnerKey;
    this.reconnectDelayMs = Math.max(1, options.reconnectDelayMs ?? 500);
    this.maxReconnectDelayMs = Math.max(this.reconnectDelayMs, options.maxReconnectDelayMs ?? 30_000);
    const heartbeat = options.heartbeatIntervalMs ?? 5000;
    this.heartbeatMs = heartbeat <= 0 ? 0 : Math.min(MAX_HEARTBEAT_MS, Math.max(MIN_HEARTBEAT_MS, heartbeat));
    this.target = target;
    this.credentials = options.credentials;
    this.client = this.connect();
    if (this.watching) this.follow();
  }

  /** Whether the change stream is up (verdicts may then be kept up to an hour). */
  get watchingUp(): boolean {
    return this.up;
  }

  /** A snapshot of the guard's counters (verifies, cache hits, heartbeats, stalls). */
  get stats(): KeyGuardStats {
    return { ...this.#stats };
  }

  /** Stops following changes and closes the connection to latchkey. */
  close(): void {
    this.closed = true;
    this.up = false;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.reconnectTimer = undefined;
    this.stallTimer = undefined;
    this.stream?.cancel();
    this.stream = undefined;
    this.allowed.clear();
    this.client.close();
  }

  /**
   * Resolves who called when latchkey allows `key` for `endpoint`, else
   * rejects with a KeyRefusedError. `callerAddress` (the end caller's IP, or
   * a peer string) is passed to latchkey as `caller_address`.
   */
  async check(key: string | undefined, endpoint: string, callerAddress?: string): Promise<VerifiedCaller> {
    if (!key) throw new KeyRefusedError(grpc.status.UNAUTHENTICATED, 'Invalid credentials');
    const cacheKey = this.cacheKey(key, endpoint);
    const now = Date.now();
    const hit = this.allowed.get(cacheKey);
    if (hit) {
      if ((hit.expireTime === undefined || hit.expireTime > now) && this.trusted(hit)) {
        this.#stats.cacheHits++;
        return { ...hit.caller };
      }
      this.allowed.delete(cacheKey);
    }
    const changesSeen = this.changesSeen;
    this.#stats.verifies++;
    const verdict = await this.verify(key, endpoint, peerAddress(callerAddress) ?? '');
    switch (verdict.decision) {
      case 'DECISION_ALLOWED': {
        const caller = { integration: verdict.integration, keyId: verdict.keyId };
        const expireTime = verdict.expireTime ? durationMs(verdict.expireTime) : undefined;
        // A key with a rate limit is never cached: latchkey has to count every use.
        const cacheable = !verdict.rateLimit;
        // Single-threaded: nothing can change between this test and the insert.
        if (cacheable && this.ttlMs > 0 && !this.closed && this.changesSeen === changesSeen) {
          if (this.allowed.size >= MAX_ENTRIES) {
            const oldest = this.allowed.keys().next().value;
            if (oldest !== undefined) this.allowed.delete(oldest);
          }
          this.allowed.set(cacheKey, { caller, expireTime, cachedAt: performance.now() });
        }
        return { ...caller };
      }
      case 'DECISION_ENDPOINT_NOT_GRANTED':
        throw new KeyRefusedError(grpc.status.PERMISSION_DENIED, 'This key may not call this endpoint');
      case 'DECISION_CALLER_NOT_ALLOWED':
        throw new KeyRefusedError(grpc.status.PERMISSION_DENIED, 'This key may not be used from this address');
      case 'DECISION_RATE_LIMITED':
        // The key's rate limit, or too many failed attempts: latchkey does not say which.
        throw new KeyRefusedError(grpc.status.RESOURCE_EXHAUSTED, 'Too many requests; retry later',
          durationMs(verdict.retryAfter) ?? 1000);
      default: // MALFORMED, INVALID, EXPIRED, DISABLED, unknown
        throw new KeyRefusedError(grpc.status.UNAUTHENTICATED, 'Invalid credentials');
    }
  }

  private verify(apiKey: string, endpoint: string, callerAddress: string): Promise<VerifyIntegrationKeyResponse__Output> {
    return new Promise((resolve, reject) => {
      this.client.integrationKeys.verifyIntegrationKey(
        { apiKey, endpoint, callerAddress }, new grpc.Metadata(), { deadline: Date.now() + this.timeoutMs },
        (err, value) => {
          if (!err && value) return resolve(value);
          if (err?.code === grpc.status.RESOURCE_EXHAUSTED) {
            // latchkey is shedding load: so does this server.
            return reject(new KeyRefusedError(grpc.status.RESOURCE_EXHAUSTED, 'Key verification is overloaded',
              retryDelayMs(err.metadata) ?? 1000));
          }
          reject(new KeyRefusedError(grpc.status.UNAVAILABLE, 'Key verification is unavailable'));
        });
    });
  }

  /** Within the cache TTL, or at any age up to an hour while the change stream is up. */
  private trusted(hit: CachedAllow): boolean {
    // A monotonic clock: a wall clock stepped back would make ages negative.
    const age = performance.now() - hit.cachedAt;
    if (this.up) return age < Math.max(this.ttlMs, WATCHED_TTL_MS);
    return age < this.ttlMs;
  }

  private cacheKey(key: string, endpoint: string): string {
    return createHmac('sha256', this.#macKey).update(key).update('\0').update(endpoint).digest('base64');
  }

  /** A client on a connection of its own, so that replacing it replaces the connection. */
  private connect(): LatchkeyClient {
    return new LatchkeyClient(this.target, {
      credentials: this.credentials, timeoutMs: this.timeoutMs,
      channelOptions: { 'grpc.use_local_subchannel_pool': 1 },
    });
  }

  private apply(change: WatchKeyChangesResponse__Output): void {
    if (change.kind === 'WATCH_EVENT_KIND_HEARTBEAT') {
      // A sign of life only: nothing changed.
      this.#stats.heartbeats++;
      return;
    }
    this.changesSeen++;
    switch (change.kind) {
      case 'WATCH_EVENT_KIND_KEY_CHANGED':
        for (const [k, v] of this.allowed) if (v.caller.keyId === change.keyId) this.allowed.delete(k);
        break;
      case 'WATCH_EVENT_KIND_INTEGRATION_CHANGED':
        for (const [k, v] of this.allowed) if (v.caller.integration === change.integration) this.allowed.delete(k);
        break;
      default: // RESET, and kinds this guard does not know: drop everything.
        this.allowed.clear();
    }
  }

  /**
   * Follows WatchKeyChanges until close(): applies what it says, and
   * re-opens it with backoff when it ends, fails or stalls.
   */
  private follow(): void {
    if (this.closed) return;
    const metadata = new grpc.Metadata();
    if (this.#partnerKey) metadata.set('sid', this.#partnerKey);
    const request = this.heartbeatMs > 0 ? { heartbeatInterval: duration(this.heartbeatMs) } : {};
    const stream = this.client.integrationKeys.watchKeyChanges(request, metadata);
    this.stream = stream;
    let ended = false;
    const down = () => {
      if (ended) return;
      ended = true;
      if (this.stream !== stream) return;
      if (this.stallTimer) clearTimeout(this.stallTimer);
      this.stallTimer = undefined;
      this.up = false;
      this.stream = undefined;
      if (this.closed) return;
      this.reconnectLater();
    };
    if (this.heartbeatMs > 0) {
      // Armed from the start: a stream that never says RESET is stalled too.
      this.stallTimer = setTimeout(() => {
        if (ended || this.stream !== stream || this.closed) return;
        this.#stats.stalls++;
        // As on RESET: changes may have been missed, and none will come.
        this.changesSeen++;
        this.allowed.clear();
        down();
        stream.cancel();
        // The connection is dead but not closed: a new stream on it would
        // stall too, so the next one (and verification) gets a new one.
        // Calls already under way on the old connection run to their deadline.
        const stalled = this.client;
        this.client = this.connect();
        stalled.close();
      }, STALL_INTERVALS * this.heartbeatMs);
      this.stallTimer.unref();
    }
    stream.on('data', (change: WatchKeyChangesResponse__Output) => {
      if (ended || this.stream !== stream) return;
      this.stallTimer?.refresh();
      this.apply(change);
      if (change.kind === 'WATCH_EVENT_KIND_RESET') {
        this.up = true;
        this.reconnectAttempts = 0;
      }
    });
    stream.on('error', down); // errors are also reported by 'status'; a listener keeps them from being thrown
    stream.on('status', down);
    stream.on('end', down);
  }

  /** Schedules follow() after an exponentially growing, jittered delay. */
  private reconnectLater(): void {
    const delay = Math.min(this.maxReconnectDelayMs, this.reconnectDelayMs * 2 ** Math.min(this.reconnectAttempts, 30));
    this.reconnectAttempts++;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.follow();
    }, delay * (0.5 + Math.random() * 0.5));
    this.reconnectTimer.unref();
  }
}
