// Runs the real latchkey binary ($LATCHKEY_BIN) for the HTTP client tests, as
// sdk/typescript/test/server.ts does for gRPC: a fresh SQLite database in a
// temporary directory, cheap argon2, a catalog with one custom and one
// builtin integration, a partner key made with the CLI. It listens for gRPC
// and HTTP on two ports reserved here (`--listen 127.0.0.1:P1 --http-listen
// 127.0.0.1:P2`), and is ready once both ports accept connections and HTTP
// answers a request (polled, no fixed sleeps).
import { execFileSync, spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';

/** The custom integration the catalog creates, and the endpoint it grants. */
export const CUSTOM = 'learner-activity';
export const GRANTED = 'course.v1.CourseService/GetOutline';
export const NOT_GRANTED = 'course.v1.CourseService/DeleteCourse';
/** A builtin integration: it exists, but may not hold API keys. */
export const BUILTIN = 'reporting';

const START_TIMEOUT_MS = 60_000;
const POLL_INTERVAL_MS = 100;

function latchkeyBin() {
  const bin = process.env.LATCHKEY_BIN;
  if (!bin) throw new Error('LATCHKEY_BIN is not set: point it at a latchkey binary built with --http-listen');
  try {
    accessSync(bin, constants.X_OK);
  } catch {
    throw new Error(`LATCHKEY_BIN=${bin} is not an executable file`);
  }
  return bin;
}

/**
 * Splits a key `<prefix>_<16 base62>_<49 base62>` into its public id
 * (`<prefix>_<16>`) and its secret (the rest after `<id>_`).
 */
export function splitKey(key, prefix) {
  const m = new RegExp(`^(${prefix}_[0-9A-Za-z]{16})_([0-9A-Za-z]{49})$`).exec(key);
  if (!m) throw new Error(`not a ${prefix} key: ${key.slice(0, 21)}...`);
  return { id: m[1], secret: m[2] };
}

/**
 * Ports the OS has free now. All are held at once, so they differ, then
 * released for latchkey to bind (a port taken by someone else in between
 * makes latchkey exit, and startServer reports its log).
 */
async function freePorts(count) {
  const servers = [];
  try {
    for (let i = 0; i < count; i++) {
      const s = net.createServer();
      servers.push(s);
      await new Promise((resolve, reject) => {
        s.once('error', reject);
        s.listen(0, '127.0.0.1', resolve);
      });
    }
    return servers.map((s) => s.address().port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(() => resolve()))));
  }
}

function tcpAccepts(port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.setTimeout(1_000);
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('timeout', () => { socket.destroy(); resolve(false); });
    socket.once('error', () => resolve(false));
  });
}

/** Any HTTP answer (whatever its status) from the HTTP listener. */
async function httpAnswers(baseUrl) {
  try {
    const res = await fetch(`${baseUrl}/openapi.json`, { signal: AbortSignal.timeout(2_000) });
    await res.arrayBuffer();
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts latchkey. Returns { grpcAddr, httpUrl, partnerKey, partnerKeyId,
 * partnerKeySecret, log, stop() }; stop() sends SIGTERM and throws unless
 * latchkey exits 0.
 */
export async function startServer() {
  const bin = latchkeyBin();
  const dir = mkdtempSync(path.join(tmpdir(), 'latchkey-http-'));
  // Only our settings: none inherited from the caller's LATCHKEY_* environment.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LATCHKEY_')));
  Object.assign(env, {
    LATCHKEY_DATABASE_URL: `sqlite://${dir}/t.db?mode=rwc`,
    // Cheap argon2: the tests check behaviour, not hashing cost.
    LATCHKEY_ARGON2_MEMORY_KIB: '256',
    LATCHKEY_ARGON2_ITERATIONS: '1',
  });
  const partnerKey = execFileSync(bin, ['partner-keys', 'create', '--name', 'http-clients'],
    { env, encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  const { id: partnerKeyId, secret: partnerKeySecret } = splitKey(partnerKey, 'lkp');

  const catalog = path.join(dir, 'catalog.toml');
  writeFileSync(catalog, [
    '[[integrations]]', `name = "${CUSTOM}"`, 'kind = "custom"', 'description = "HTTP client tests"',
    `endpoints = ["${GRANTED}"]`, '',
    '[[integrations]]', `name = "${BUILTIN}"`, 'kind = "builtin"', 'description = "May not hold API keys"', '',
  ].join('\n'));

  const [grpcPort, httpPort] = await freePorts(2);
  const grpcAddr = `127.0.0.1:${grpcPort}`;
  const httpUrl = `http://127.0.0.1:${httpPort}`;
  const child = spawn(bin, ['serve', '--listen', grpcAddr, '--http-listen', `127.0.0.1:${httpPort}`,
    '--catalog', catalog, '--log-format', 'json'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let exitCode;
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => {
    exitCode = code ?? signal;
    resolve(exitCode);
  }));
  const log = [];
  // Keep reading stderr for the whole run: a full pipe would block the server.
  createInterface({ input: child.stderr }).on('line', (line) => log.push(line));

  const fail = async (why) => {
    if (exitCode === undefined) {
      child.kill('SIGKILL');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`${why}:\n${log.slice(-40).join('\n')}`);
  };
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (exitCode !== undefined) await fail(`latchkey exited (${exitCode}) before serving`);
    if (await tcpAccepts(grpcPort) && await httpAnswers(httpUrl)) break;
    if (Date.now() > deadline) await fail(`latchkey did not answer HTTP on ${httpUrl} within ${START_TIMEOUT_MS / 1000} s`);
    await sleep(POLL_INTERVAL_MS);
  }

  return {
    grpcAddr, httpUrl, partnerKey, partnerKeyId, partnerKeySecret, log,
    async stop() {
      if (exitCode === undefined) {
        child.kill('SIGTERM');
        const force = setTimeout(() => child.kill('SIGKILL'), 30_000);
        await exited;
        clearTimeout(force);
      }
      rmSync(dir, { recursive: true, force: true });
      if (exitCode !== 0) throw new Error(`latchkey exited ${exitCode} on SIGTERM (expected 0):\n${log.slice(-20).join('\n')}`);
    },
  };
}
