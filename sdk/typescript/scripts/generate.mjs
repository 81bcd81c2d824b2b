// Generates what the package needs from the repository's proto/ (run by
// `npm run build`; the outputs are build products, not committed):
//   proto/    a copy of ../../proto: shipped in the package, loaded at run time
//             by @grpc/proto-loader (no protoc needed anywhere)
//   src/gen/  TypeScript types for those messages and service clients, from
//             proto-loader-gen-types, plus grpc.health.v1 from grpc-health-check
import { execFileSync } from 'node:child_process';
import { cpSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkg = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const source = resolve(pkg, '../../proto');
const require = createRequire(import.meta.url);
const genTypes = require.resolve('@grpc/proto-loader/build/bin/proto-loader-gen-types.js');
const healthRoot = resolve(dirname(require.resolve('grpc-health-check/proto/health/v1/health.proto')), '../..');

rmSync(join(pkg, 'proto'), { recursive: true, force: true });
rmSync(join(pkg, 'src/gen'), { recursive: true, force: true });
cpSync(source, join(pkg, 'proto'), { recursive: true });

const latchkeyProtos = readdirSync(join(pkg, 'proto/latchkey/v1'))
  .filter((f) => f.endsWith('.proto')).sort().map((f) => `latchkey/v1/${f}`);
// These flags must match LOADER_OPTIONS in src/client.ts: the types describe
// the objects the loader produces (camelCase fields, string enums and int64s).
// File names come first: -I takes every following argument as a directory.
execFileSync(process.execPath, [
  genTypes, ...latchkeyProtos, 'health/v1/health.proto',
  '--grpcLib=@grpc/grpc-js', '--longs=String', '--enums=String', '--defaults', '--oneofs',
  '--includeComments', '-O', join(pkg, 'src/gen'), '-I', join(pkg, 'proto'), healthRoot,
], { stdio: 'inherit', cwd: pkg });
console.log(`generated src/gen and proto/ from ${source} (${latchkeyProtos.length} files)`);
