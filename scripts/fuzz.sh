#!/usr/bin/env bash
# Fuzzing: builds every target under fuzz/ (cargo fuzz on the nightly toolchain, with
# AddressSanitizer, debug assertions and overflow checks) and runs each for FUZZ_SECONDS
# (default 30) on a scratch copy of its seed corpus, fuzz/corpus/<target>, which stays as
# committed. Fails when a target crashes, runs out of memory or hangs; the input is kept
# under fuzz/artifacts/<target>/ and the end of the target's output is printed.
#   FUZZ_SECONDS=600 scripts/fuzz.sh            # longer runs
#   FUZZ_TARGETS="hook render" scripts/fuzz.sh  # some targets only
# Reproduce a crash: cd fuzz && cargo +nightly fuzz run -a <target> artifacts/<target>/<file>
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${FUZZ_SECONDS:-30}"
# The same flags for build and run, so that run does not build again. Sixteen codegen
# units build faster on few cores than cargo fuzz's default of one, and fuzz nearly as fast.
flags=(--debug-assertions --codegen-units 16)
read -r -a targets <<<"${FUZZ_TARGETS:-$(cargo +nightly fuzz list | tr '\n' ' ')}"

cargo +nightly fuzz build "${flags[@]}"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
failed=()
for target in "${targets[@]}"; do
  options=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048)
  case "$target" in
    hook | render) options+=(-max_len=16384 -dict=json.dict) ;;
    config) options+=(-max_len=8192 -dict=yaml.dict) ;;
    *) options+=(-max_len=256) ;;
  esac
  mkdir -p "$scratch/$target"
  echo "fuzz: $target for ${seconds}s"
  if cargo +nightly fuzz run "${flags[@]}" "$target" "$scratch/$target" "corpus/$target" \
    -- "${options[@]}" >"$scratch/$target.log" 2>&1; then
    grep -E '^Done [0-9]+ runs' "$scratch/$target.log" || true
  else
    tail -n 40 "$scratch/$target.log"
    failed+=("$target")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: ${failed[*]} failed; the inputs are under fuzz/artifacts/" >&2
  exit 1
fi
