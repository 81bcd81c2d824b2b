// Runs the real latchkey binary for the tests: fresh SQLite database, a
// partner key, a catalog granting `learner-activity` one endpoint, a port
// picked by the OS.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { createInterface } from 'node:readline';

export const GRANTED = 'course.v1.CourseService/GetOutline';
const REPO = path.resolve(__dirname, '../../../..'); // dist/test -> repository root

function latchkeyBin(): string {
  const bin = process.env.LATCHKEY_BIN
    || path.join(process.env.CARGO_TARGET_DIR || path.join(REPO, 'target'), 'debug', 'latchkey');
  try {
    accessSync(bin, constants.X_OK);
  } catch {
    throw new Error(`latchkey binary not found at ${bin}: build it (cargo build) or set LATCHKEY_BIN`);
  }
  return bin;
}

export interface Server {
  addr: string;
  partnerKey: string;
  stop(): Promise<void>;
}

export interface ServerOptions {
  /** More grants for `learner-activity`, after GRANTED. */
  extraEndpoints?: string[];
}

export async function startServer(options: ServerOptions = {}): Promise<Server> {
  const bin = latchkeyBin();
  const dir = mkdtempSync(path.join(tmpdir(), 'latchkey-ts-'));
  // Only our settings: none inherited from the caller's LATCHKEY_* environment.
  const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LATCHKEY_')));
  Object.assign(env, {
    LATCHKEY_DATABASE_URL: `sqlite://${dir}/t.db?mode=rwc`,
    // Cheap argon2: the tests check behaviour, not hashing cost.
    LATCHKEY_ARGON2_MEMORY_KIB: '256',
    LATCHKEY_ARGON2_ITERATIONS: '1',
  });
  const partnerKey = execFileSync(bin, ['partner-keys', 'create', '--name', 'test'], { env, encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  writeFileSync(path.join(dir, 'catalog.toml'),
    `[[integrations]]\nname = "learner-activity"\nkind = "custom"\ndescription = "TypeScript SDK tests"\nendpoints = ${JSON.stringify([GRANTED, ...(options.extraEndpoints ?? [])])}\n`);
  const child = spawn(bin, ['serve', '--listen', '127.0.0.1:0', '--catalog', path.join(dir, 'catalog.toml'), '--log-format', 'json'],
    { env, stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const log: string[] = [];
  const addr = await new Promise<string>((resolve, reject) => {
    const deadline = setTimeout(() => reject(new Error(`latchkey did not start within 60 s:\n${log.join('\n')}`)), 60_000);
    // Keep reading stderr for the whole run: a full pipe would block the server.
    createInterface({ input: child.stderr! }).on('line', (line) => {
      log.push(line);
      if (line.includes('latchkey serving')) {
        clearTimeout(deadline);
        resolve(JSON.parse(line).fields.addr);
      }
    });
    exited.then((code) => {
      clearTimeout(deadline);
      reject(new Error(`latchkey exited ${code} before serving:\n${log.join('\n')}`));
    });
  });
  return { addr, partnerKey, stop: () => stop(child, exited, dir, log) };
}

async function stop(child: ChildProcess, exited: Promise<number | null>, dir: string, log: string[]): Promise<void> {
  child.kill('SIGTERM');
  const deadline = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const code = await exited;
  clearTimeout(deadline);
  rmSync(dir, { recursive: true, force: true });
  if (code !== 0) throw new Error(`latchkey exited ${code} on SIGTERM:\n${log.slice(-20).join('\n')}`);
}
