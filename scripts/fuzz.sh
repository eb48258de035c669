#!/usr/bin/env bash
# Builds the libFuzzer targets (the "fuzz" preset: clang, ASan + UBSan; scripts/setup.sh --fuzz installs clang) and
# fuzzes each parser for a bounded time.
#
#   scripts/fuzz.sh                         every target, SECONDS_PER_TARGET (default 30) each
#   SECONDS_PER_TARGET=300 scripts/fuzz.sh spec model    only these targets (names as in tests/fuzz/fuzz_<name>.cpp)
#
# Environment: SECONDS_PER_TARGET (30), FUZZ_TMPDIR (the targets' temporary files; default build/fuzz/tmp, emptied
# first: give concurrent runs their own), JOBS (build parallelism, default: all cores), FUZZ_ARGS (more libFuzzer
# flags, e.g. "-dict=..." or "-seed=1"), NO_BUILD=1 (use the fuzzers already built), KEEP_GOING=1 (fork mode: go on
# after a crash, leak, OOM or timeout, so a known bug doesn't stop the search for others; every input found is kept).
#
# Each target first re-runs its saved regression inputs (tests/fuzz/regressions/<name>/*: inputs that crashed once),
# then fuzzes a working copy of its seed corpus, build/fuzz/corpus-work/<name> (tests/fuzz/corpus/ is never
# modified; the working copy keeps what earlier runs found). Inputs that crash, leak, run out of memory
# (-rss_limit_mb=2048) or time out (-timeout=10 s per input) are written to build/fuzz/artifacts/<name>/; the logs to
# build/fuzz/logs/<name>.log. Exits non-zero if any target found something or a regression input fails.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

seconds=${SECONDS_PER_TARGET:-30}
jobs=${JOBS:-$(nproc)}
build="$root/build/fuzz"
all_targets=(model spec csv csv_gz image image_folder onnx)
targets=("$@")
((${#targets[@]})) || targets=("${all_targets[@]}")

# Longest input per target: enough for the seeds (a tiny model is ~10 KB, a CSV row ~9 KB), small enough that one
# input stays well within -timeout under the sanitizers. csv_gz's limit also bounds what a zip bomb inflates to
# (deflate: at most ~1032:1, so ~8 MB, which the sanitized loader parses in a few seconds even as millions of
# malformed rows).
max_len() {
  case "$1" in
    model | csv) echo 65536 ;;
    onnx) echo 131072 ;;  # the PyTorch seed (tests/onnx/torch_cnn.onnx) is 89 KB
    image | image_folder) echo 32768 ;;
    csv_gz) echo 8192 ;;
    spec) echo 4096 ;;
    *) echo 4096 ;;
  esac
}

if [[ -z "${NO_BUILD:-}" ]]; then
  if ! command -v clang++ >/dev/null; then
    echo "fuzz: clang++ not found (scripts/setup.sh --fuzz)" >&2
    exit 2
  fi
  cmake --preset fuzz >/dev/null
  cmake --build --preset fuzz -j "$jobs" --target ferkit-fuzz
fi

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"

mkdir -p "$build/logs"
# The file-based targets write their inputs under a private temporary folder, left behind when they crash.
export TMPDIR="${FUZZ_TMPDIR:-$build/tmp}"
rm -rf "$TMPDIR"
mkdir -p "$TMPDIR"
failed=()
total_execs=0
printf '\n%-14s %12s %10s  %s\n' target executions exec/s result
for name in "${targets[@]}"; do
  bin="$build/tests/fuzz/fuzz_$name"
  if [[ ! -x "$bin" ]]; then
    printf '%-14s %12s %10s  %s\n' "$name" - - "not built (no tests/fuzz/fuzz_$name.cpp?)"
    continue
  fi
  log="$build/logs/$name.log"
  artifacts="$build/artifacts/$name"
  work="$build/corpus-work/$name"
  mkdir -p "$artifacts" "$work"
  : >"$log"

  # Saved regression inputs, one run each.
  bad_regressions=0
  if [[ -d "tests/fuzz/regressions/$name" ]]; then
    while IFS= read -r -d '' input; do
      if ! timeout 120 "$bin" -rss_limit_mb=2048 -timeout=10 "$input" >>"$log" 2>&1; then
        echo "fuzz: $name: regression input fails: $input (see $log)" >&2
        bad_regressions=$((bad_regressions + 1))
      fi
    done < <(find "tests/fuzz/regressions/$name" -type f ! -name 'README*' -print0 | sort -z)
  fi

  # Fuzz a working copy of the seeds.
  if [[ -d "tests/fuzz/corpus/$name" ]]; then
    cp -f tests/fuzz/corpus/"$name"/* "$work"/
  fi
  stamp="$build/logs/.$name.start"
  touch "$stamp"
  before=$(find "$artifacts" -type f | wc -l)
  rc=0
  keep_going=()
  [[ -n "${KEEP_GOING:-}" ]] && keep_going=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
  # shellcheck disable=SC2086
  timeout $((seconds + 120)) "$bin" "$work" "${keep_going[@]}" \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len="$(max_len "$name")" \
    -artifact_prefix="$artifacts/" -print_final_stats=1 ${FUZZ_ARGS:-} >>"$log" 2>&1 || rc=$?
  after=$(find "$artifacts" -type f | wc -l)

  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -n1 | grep -o '[0-9]*$' || true)
  if [[ -z "$execs" ]]; then  # killed before the final stats: the last status line
    execs=$(grep -o '^#[0-9]*' "$log" | tail -n1 | tr -d '#' || true)
  fi
  execs=${execs:-0}
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | tail -n1 | grep -o '[0-9]*$' || echo -)
  total_execs=$((total_execs + execs))

  result="ok"
  if ((rc != 0 || after > before)); then
    what=$(grep -oE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer|UndefinedBehaviorSanitizer): [^ ]+( [^ ]+)?' \
      "$log" | tail -n1 || true)
    [[ -z "$what" ]] && what=$(grep -oE 'runtime error: .*' "$log" | tail -n1 || true)
    ((rc == 124)) && what="${what:-killed by timeout}"
    result="FOUND (exit $rc) ${what:-see log}: $(find "$artifacts" -type f -newer "$stamp" -printf '%p ' 2>/dev/null)"
    failed+=("$name")
  fi
  if ((bad_regressions)); then
    result="$result; $bad_regressions regression input(s) fail"
    [[ " ${failed[*]} " == *" $name "* ]] || failed+=("$name")
  fi
  printf '%-14s %12s %10s  %s\n' "$name" "$execs" "$rate" "$result"
done

echo "total executions: $total_execs (${seconds}s per target; logs in build/fuzz/logs/)"
if ((${#failed[@]})); then
  echo "fuzz: findings in: ${failed[*]} (inputs in build/fuzz/artifacts/<target>/)" >&2
  exit 1
fi
