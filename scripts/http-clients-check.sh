#!/usr/bin/env bash
# Proves latchkey's HTTP listener (`serve --http-listen`, API.md "HTTP (second
# round)") against real third-party clients and a real OpenAPI linter, for
# .ci/run:
#   Zendesk's sunshine-conversations-client (CustomIntegrationApiKeysApi),
#   Connect for Node (@connectrpc/connect-node, types from proto/ by
#   protoc-gen-es), GET /openapi.json's shape, then Redocly lint of it.
#
#   LATCHKEY_BIN=$CARGO_TARGET_DIR/debug/latchkey scripts/http-clients-check.sh
#
# Installs what it needs on every run (`npm ci` in tests/http-clients from
# the lockfile, buf and protoc-gen-es from there, Redocly CLI through npx), so
# a fresh machine or CI needs only node (>= 20), npm and curl. Any missing
# tool or failing step stops it non-zero: nothing is ever skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
TESTS="$ROOT/tests/http-clients"

# @redocly/cli on npm; bump deliberately, rule sets change between versions.
# 2.77.0 still runs on Node 20.19+ (it warns that Node 20 is end-of-life).
REDOCLY_VERSION=2.77.0

fail() { echo "FATAL: http clients check: $*" >&2; exit 1; }
step() { printf '\n== http clients: %s\n' "$*"; }

[[ -n "${LATCHKEY_BIN:-}" ]] || fail "LATCHKEY_BIN is not set (path to the latchkey binary to test against)"
[[ -x "$LATCHKEY_BIN" ]] || fail "LATCHKEY_BIN=$LATCHKEY_BIN is not an executable file"
LATCHKEY_BIN="$(cd "$(dirname "$LATCHKEY_BIN")" && pwd)/$(basename "$LATCHKEY_BIN")"   # the steps change directory
export LATCHKEY_BIN
for tool in node npm npx curl; do
  command -v "$tool" >/dev/null || fail "$tool is not installed"
done
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' \
  || fail "node $(node --version) is too old: the clients need Node 20 or later"
"$LATCHKEY_BIN" serve --help 2>&1 | grep -q -- '--http-listen' \
  || fail "$LATCHKEY_BIN has no 'serve --http-listen': build a latchkey with the HTTP listener"

step "npm ci (tests/http-clients, from its lockfile)"
(cd "$TESTS" && npm ci --no-audit --no-fund)

step "generate the Connect types from proto/ (buf generate with the local protoc-gen-es)"
(cd "$TESTS" && npm run --silent generate)
for proto in proto/latchkey/v1/*.proto; do
  gen="$TESTS/gen/latchkey/v1/$(basename "$proto" .proto)_pb.js"
  [[ -s "$gen" ]] || fail "buf generate did not write ${gen#"$ROOT"/} for $proto"
done
echo "generated: $(cd "$TESTS" && find gen -name '*_pb.js' | sort | tr '\n' ' ')"

step "node --test: Sunshine client, Connect client, openapi.json (each against its own server)"
(cd "$TESTS" && node --test ./*.test.mjs)

step "openapi.json: Redocly lint ($REDOCLY_VERSION, tests/http-clients/redocly.yaml)"
tmp="$(mktemp -d)"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then kill -TERM "$server_pid"; wait "$server_pid" || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

show_log() { tail -40 "$tmp/server.log" >&2 || true; }

# A fresh database and only our settings, none from the caller's LATCHKEY_*.
BIN="$LATCHKEY_BIN"
while read -r var; do unset "$var"; done < <(compgen -e | grep '^LATCHKEY_' || true)
export LATCHKEY_DATABASE_URL="sqlite://$tmp/t.db?mode=rwc"
export LATCHKEY_ARGON2_MEMORY_KIB=256 LATCHKEY_ARGON2_ITERATIONS=1   # cheap hashing: behaviour, not cost

# Two ports free now (held together, so they differ), for gRPC and HTTP.
read -r GRPC_PORT HTTP_PORT < <(node -e '
  const net = require("node:net");
  const a = net.createServer().listen(0, "127.0.0.1", () => {
    const b = net.createServer().listen(0, "127.0.0.1", () => {
      console.log(a.address().port, b.address().port);
      a.close(); b.close();
    });
  });') || true
[[ -n "$GRPC_PORT" && -n "$HTTP_PORT" ]] || fail "could not reserve two free ports"
BASE="http://127.0.0.1:$HTTP_PORT"
"$BIN" serve --listen "127.0.0.1:$GRPC_PORT" --http-listen "127.0.0.1:$HTTP_PORT" \
  --catalog examples/catalog.toml --log-format json 2>"$tmp/server.log" &
server_pid=$!

# Poll until HTTP answers (any status), up to 60 s.
ready=""
for _ in $(seq 600); do
  if curl -s -o /dev/null --max-time 2 "$BASE/openapi.json"; then ready=1; break; fi
  kill -0 "$server_pid" 2>/dev/null || { show_log; fail "latchkey exited before serving HTTP"; }
  sleep 0.1
done
[[ -n "$ready" ]] || { show_log; fail "latchkey did not answer HTTP on $BASE within 60 s"; }
echo "latchkey serving HTTP on $BASE"

curl -fsS "$BASE/openapi.json" >"$tmp/served.json" || fail "GET $BASE/openapi.json failed"
# Indented, so the linter's line numbers point somewhere readable.
node -e 'const fs = require("node:fs");
  fs.writeFileSync(process.argv[2], JSON.stringify(JSON.parse(fs.readFileSync(process.argv[1], "utf8")), null, 2));' \
  "$tmp/served.json" "$tmp/openapi.json" || fail "GET /openapi.json is not JSON"
(cd "$TESTS" && REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true \
  npx --yes "@redocly/cli@$REDOCLY_VERSION" lint --config redocly.yaml "$tmp/openapi.json") \
  || fail "Redocly lint of GET /openapi.json failed (errors above; rules: tests/http-clients/redocly.yaml)"

kill -TERM "$server_pid"
code=0; wait "$server_pid" || code=$?
server_pid=""
[[ $code -eq 0 ]] || { show_log; fail "latchkey exited $code on SIGTERM (expected 0)"; }

step "http clients check ok"
