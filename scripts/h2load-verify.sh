#!/usr/bin/env bash
# Cached VerifyIntegrationKey against the empty-RPC limit (grpc.health.v1
# Check), measured from outside with nghttp2's h2load on one server, in one
# run: prints both rates and their ratio. No speed is asserted; a call that
# does not answer gRPC OK (and, for verify, DECISION_ALLOWED) fails the run.
#
#   scripts/h2load-verify.sh [REQUESTS] [CONNECTIONS] [STREAMS] [ROUNDS]
#       defaults: 200000 requests, 4 connections x 16 streams, 5 rounds
#   LATCHKEY_BIN=path/to/latchkey (default: target/release/latchkey)
set -euo pipefail
cd "$(dirname "$0")/.."

requests="${1:-200000}"
connections="${2:-4}"
streams="${3:-16}"
rounds="${4:-5}"
bin="${LATCHKEY_BIN:-${CARGO_TARGET_DIR:-target}/release/latchkey}"

command -v h2load >/dev/null || { echo "FATAL: h2load is missing (apt-get install nghttp2-client)" >&2; exit 1; }
command -v curl >/dev/null || { echo "FATAL: curl is missing" >&2; exit 1; }
[ -x "$bin" ] || { echo "FATAL: no latchkey binary at $bin (set LATCHKEY_BIN)" >&2; exit 1; }

dir="$(mktemp -d)"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT

export LATCHKEY_DATABASE_URL="sqlite://$dir/h2load.db?mode=rwc"
cat > "$dir/catalog.toml" <<'TOML'
[[integrations]]
name = "h2load"
kind = "custom"
description = "h2load measurement"
endpoints = ["bench.v1.BenchService/*"]
TOML
partner_key="$("$bin" partner-keys create --name h2load 2>/dev/null)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
addr="127.0.0.1:$port"
"$bin" serve --listen "$addr" --catalog "$dir/catalog.toml" 2>"$dir/serve.log" &
server_pid=$!
for _ in $(seq 1 200); do
  "$bin" healthcheck --addr "$addr" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$dir/serve.log" >&2; exit 1; }
  sleep 0.1
done

# Length-prefixed gRPC messages, encoded here: string fields only.
frame() { # frame FILE FIELD=VALUE...: one uncompressed gRPC message
  python3 - "$@" <<'PY'
import struct, sys
out, fields = sys.argv[1], sys.argv[2:]
body = b""
for field in fields:
    number, value = field.split("=", 1)
    data = value.encode()
    n, v = len(data), bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        v.append(b | (0x80 if n else 0))
        if not n:
            break
    body += bytes([int(number) << 3 | 2]) + bytes(v) + data
open(out, "wb").write(b"\0" + struct.pack(">I", len(body)) + body)
PY
}
call() { # call METHOD BODY [HEADER]: the response message, its gRPC status checked
  local method=$1 body=$2 header=${3:-x-none: 1}
  curl -sS --http2-prior-knowledge -X POST --data-binary "@$body" \
    -H 'content-type: application/grpc' -H 'te: trailers' -H "$header" \
    -D "$dir/headers" -o "$dir/response" "http://$addr/$method"
  grep -qi '^grpc-status: 0' "$dir/headers" || { echo "FATAL: $method did not answer OK" >&2; cat "$dir/headers" >&2; exit 1; }
}

frame "$dir/create.bin" "1=h2load" "2=h2load"
call latchkey.v1.IntegrationKeysService/CreateIntegrationKey "$dir/create.bin" "sid: $partner_key"
api_key="$(python3 - "$dir/response" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()[5:]
i = 0
while i < len(data):  # top-level fields of CreateIntegrationKeyResponse
    tag = data[i]; i += 1
    n = shift = 0
    while True:
        b = data[i]; i += 1
        n |= (b & 0x7F) << shift; shift += 7
        if not b & 0x80:
            break
    if tag == (2 << 3 | 2):
        print(data[i:i + n].decode()); break
    i += n
PY
)"
[ -n "$api_key" ] || { echo "FATAL: no api_key in the CreateIntegrationKey answer" >&2; exit 1; }
frame "$dir/verify.bin" "1=$api_key" "2=bench.v1.BenchService/Get"
frame "$dir/health.bin"
# Warm the key, and check the decision once: field 1 = DECISION_ALLOWED (1).
call latchkey.v1.IntegrationKeysService/VerifyIntegrationKey "$dir/verify.bin"
[ "$(od -An -tx1 -j5 -N2 "$dir/response" | tr -d ' \n')" = "0801" ] || { echo "FATAL: the key is not ALLOWED" >&2; exit 1; }
call grpc.health.v1.Health/Check "$dir/health.bin"

server_ticks() { # CPU the server has used so far, in clock ticks
  awk '{print $14 + $15}' "/proc/$server_pid/stat"
}
rate() { # rate METHOD BODY: "req/s server-us/call h2load-us/call", all answered 2xx
  local out before after times TIMEFORMAT='%3U %3S'
  before="$(server_ticks)"
  # bash's `time` gives h2load's own CPU (user, system), no extra tool.
  { time out="$(h2load -n "$requests" -c "$connections" -m "$streams" -d "$2" \
    -H 'content-type: application/grpc' -H 'te: trailers' "http://$addr/$1")"; } 2>"$dir/time"
  after="$(server_ticks)"
  echo "$out" | grep -q "requests: $requests total, $requests started, $requests done, $requests succeeded" \
    || { echo "FATAL: not every $1 call succeeded:" >&2; echo "$out" >&2; exit 1; }
  times="$(cat "$dir/time")"
  echo "$out" | awk -v before="$before" -v after="$after" -v tck="$(getconf CLK_TCK)" \
    -v n="$requests" -v times="$times" '/^finished in/ {
      split(times, t, " ")
      printf "%s %.2f %.2f\n", $4, (after - before) / tck * 1e6 / n, (t[1] + t[2]) * 1e6 / n
    }'
}
# Rounds alternate which method goes first, so a drift in the machine's
# speed during the run does not always favour the same one; the median of
# the rounds' ratios is the figure to quote.
ratios=()
for round in $(seq 1 "$rounds"); do
  if (( round % 2 )); then
    health="$(rate grpc.health.v1.Health/Check "$dir/health.bin")"
    verify="$(rate latchkey.v1.IntegrationKeysService/VerifyIntegrationKey "$dir/verify.bin")"
  else
    verify="$(rate latchkey.v1.IntegrationKeysService/VerifyIntegrationKey "$dir/verify.bin")"
    health="$(rate grpc.health.v1.Health/Check "$dir/health.bin")"
  fi
  ratios+=("$health:$verify")
done
python3 - "$requests" "$connections" "$streams" "${ratios[@]}" <<'PY'
import statistics, sys
n, c, m, *rounds = sys.argv[1:]
print(f"h2load: {n} requests per method and round, {c} connections x {m} streams")
print("CPU per call (us) of the server and of h2load, from /proc and bash's time;")
print("both share this machine, so h2load's work on a larger call counts too")
ratios = []
for i, pair in enumerate(rounds, 1):
    health, verify = (list(map(float, side.split())) for side in pair.split(":"))
    ratios.append(verify[0] / health[0])
    print(f"round {i}: grpc.health.v1 Check {health[0]:10.1f} req/s "
          f"(server {health[1]:.2f} us, h2load {health[2]:.2f} us), "
          f"VerifyIntegrationKey cached {verify[0]:10.1f} req/s "
          f"(server {verify[1]:.2f} us, h2load {verify[2]:.2f} us), ratio {verify[0] / health[0]:.2f}")
print(f"verify / health (median of {len(ratios)}): {statistics.median(ratios):.2f}")
PY
