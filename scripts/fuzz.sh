#!/usr/bin/env bash
# Builds the libFuzzer targets in fuzz/ and runs each for a bounded time, on the stable
# toolchain. Installs cargo-fuzz once into /var/cache/swimlb (keyed by version); the
# instrumented build is cached there too, keyed by the toolchain.
#
#   scripts/fuzz.sh                                   # every target, FUZZ_SECONDS (8) each
#   FUZZ_SECONDS=600 scripts/fuzz.sh gossip_datagram  # one target, longer
#   FUZZ_SANITIZER=address scripts/fuzz.sh            # with AddressSanitizer
#
# New inputs that reach new coverage go to fuzz/corpus/<target>/ (not committed; the checked-in
# seeds are fuzz/seeds/<target>/); a crashing input goes to fuzz/artifacts/<target>/ and the
# script fails after running the rest. Reproduce one with
#   scripts/fuzz.sh --repro <target> fuzz/artifacts/<target>/crash-...
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
cache=/var/cache/swimlb
seconds=${FUZZ_SECONDS:-8}
sanitizer=${FUZZ_SANITIZER:-none}

tool_root="$cache/cargo-fuzz-$CARGO_FUZZ_VERSION"
if ! "$tool_root/bin/cargo-fuzz" --version 2>/dev/null | grep -qx "cargo-fuzz $CARGO_FUZZ_VERSION"; then
  echo "== installing cargo-fuzz $CARGO_FUZZ_VERSION into $tool_root"
  mkdir -p "$cache"
  cargo install cargo-fuzz --version "=$CARGO_FUZZ_VERSION" --locked --root "$tool_root" --quiet
fi
export PATH="$tool_root/bin:$PATH"

# cargo-fuzz passes -Zsanitizer=... for a sanitizer, which stable rustc accepts only with
# RUSTC_BOOTSTRAP; without one (-s none) the coverage instrumentation is all stable flags.
if [ "$sanitizer" != none ]; then
  export RUSTC_BOOTSTRAP=1
fi
target_dir=${FUZZ_TARGET_DIR:-$cache/fuzz-target-$(rustc -V | cut -d' ' -f2)-$sanitizer}
fuzz=(--fuzz-dir fuzz --sanitizer "$sanitizer" --target-dir "$target_dir")

if [ "${1:-}" = --repro ]; then
  [ $# -eq 3 ] || { echo "usage: scripts/fuzz.sh --repro <target> <input>" >&2; exit 2; }
  exec cargo fuzz run "${fuzz[@]}" "$2" "$3"
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
fi

max_len() {
  case "$1" in
    gossip_datagram) echo 8192 ;;
    *) echo 4096 ;;
  esac
}

echo "== building ${#targets[@]} fuzz targets (sanitizer: $sanitizer)"
cargo fuzz build "${fuzz[@]}" >/dev/null

mkdir -p fuzz/target/logs
failed=()
for target in "${targets[@]}"; do
  corpus="fuzz/corpus/$target"
  log="fuzz/target/logs/$target.log"
  mkdir -p "$corpus" "fuzz/artifacts/$target"
  if cargo fuzz run "${fuzz[@]}" "$target" "$corpus" "fuzz/seeds/$target" -- \
      -max_total_time="$seconds" -max_len="$(max_len "$target")" -rss_limit_mb=512 \
      -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
    # The last status line: executions, coverage (cov: edges, ft: features), corpus size.
    summary=$(grep -E '^#[0-9]+' "$log" | tail -n 1 | tr -s ' \t' ' ')
    echo "== fuzz $target (${seconds}s): ${summary:-no status line, see $log}"
  else
    echo "== fuzz $target FAILED; the end of $log:"
    tail -n 40 "$log"
    failed+=("$target")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz targets failed: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
