#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets) for a bounded time with
# cargo-fuzz and libFuzzer, then prints executions and coverage per target.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]      (default 60 s, all)
#
# Only the stable toolchain exists here. cargo-fuzz needs a few unstable
# rustc flags (`-Z` sanitizer/coverage options), which a stable rustc accepts
# when RUSTC_BOOTSTRAP=1; this is the documented escape hatch, used only for
# this separate build. The fuzz crate is its own workspace with its own target
# directory, so its instrumented build never mixes with the normal one.
#
# A crash stops the run non-zero and leaves the input in
# fuzz/artifacts/<target>/; fix the bug and add the input as a regression test.
# The corpus grows in the target directory, seeded from fuzz/seeds/<target>
# (regenerate those with fuzz/make_seeds.py).
set -euo pipefail
cd "$(dirname "$0")/.."

budget="${1:-60}"
shift || true
# libFuzzer reads 0 as "no limit": insist on a positive whole number.
if ! [[ "$budget" =~ ^[1-9][0-9]*$ ]]; then
  echo "FATAL: the budget must be a positive number of seconds, not '$budget'" >&2
  exit 2
fi
all_targets=(key_format catalog setting_name credentials requests)
[ "$#" -gt 0 ] && targets=("$@") || targets=("${all_targets[@]}")

export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${LATCHKEY_FUZZ_TARGET_DIR:-$HOME/.cache/latchkey-fuzz-target}"
# Optimised, with debug assertions and overflow checks on, so arithmetic on
# input that overflows is a crash rather than a silent wrap.
# Memory errors are the sanitizer's job; latchkey has no `unsafe`, so by
# default the fuzzers run without one for ~2x the executions. Set
# LATCHKEY_FUZZ_SANITIZER=address to run under AddressSanitizer.
sanitizer="${LATCHKEY_FUZZ_SANITIZER:-none}"

if ! command -v cargo-fuzz >/dev/null; then
  echo "cargo-fuzz is not installed; installing cargo-fuzz 0.13.2" >&2
  cargo install cargo-fuzz --version 0.13.2 --locked
fi

cd fuzz
cargo fuzz build --release --debug-assertions --sanitizer "$sanitizer"

summary=()
for target in "${targets[@]}"; do
  corpus="$CARGO_TARGET_DIR/corpus/$target"
  mkdir -p "$corpus"
  log="$CARGO_TARGET_DIR/fuzz-$target.log"
  echo "== fuzz $target for ${budget}s"
  if ! cargo fuzz run --release --debug-assertions --sanitizer "$sanitizer" "$target" "$corpus" "seeds/$target" -- \
      -max_total_time="$budget" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 >"$log" 2>&1; then
    grep -E -A3 'panicked at|ERROR: libFuzzer|SUMMARY' "$log" >&2 || true
    tail -25 "$log" >&2
    echo "FATAL: fuzz target $target failed; the input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  final=$(grep -E '^#[0-9]+\s+DONE' "$log" | tail -1 || true)
  cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$final")
  ft=$(sed -n 's/.*ft: \([0-9]*\).*/\1/p' <<<"$final")
  corp=$(sed -n 's/.*corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<<"$final")
  summary+=("$(printf '%-13s %10s execs  cov %5s  features %6s  corpus %s' "$target" "$runs" "${cov:-?}" "${ft:-?}" "${corp:-?}")")
done

echo
echo "fuzz summary (${budget}s per target, sanitizer: $sanitizer)"
printf '  %s\n' "${summary[@]}"
