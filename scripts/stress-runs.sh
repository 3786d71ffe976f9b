#!/usr/bin/env bash
# Runs the whole test suite N times in a row while stress-ng keeps CPUS cores busy, and prints pass or fail and the
# time of each run. Usage: scripts/stress-runs.sh [RUNS=20] [CPUS=1]. Each run holds /tmp/berth-heavy.lock (the
# machine's lock for heavy work; BERTH_HEAVY_LOCK overrides it), and stress-ng runs only while the lock is held.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
cpus=${2:-1}
lock_file=${BERTH_HEAVY_LOCK:-/tmp/berth-heavy.lock}
if ! command -v stress-ng >/dev/null; then
  echo "stress-ng not found on PATH (Debian package stress-ng)" >&2
  exit 2
fi
npm run build >/dev/null
logs=$(mktemp -d "${TMPDIR:-/tmp}/berth-stress-runs-XXXXXX")
stress=
stop_stress() {
  if [ -n "$stress" ]; then
    kill "$stress" 2>/dev/null || true
    wait "$stress" 2>/dev/null || true
    stress=
  fi
}
trap stop_stress EXIT
echo "$runs runs of the suite with stress-ng --cpu $cpus on $(nproc) cores; node $(node --version); logs in $logs"
passed=0
total=0
for i in $(seq 1 "$runs"); do
  exec {lock}>"$lock_file"
  flock "$lock"
  # Bounded by itself too, should this script be killed without running its trap.
  stress-ng --cpu "$cpus" --timeout 1200s --quiet &
  stress=$!
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  started=$(date +%s%N)
  if node scripts/run-tests.mjs >"$logs/run-$i.txt" 2>&1; then result=pass; else result=FAIL; fi
  took=$((($(date +%s%N) - started) / 1000000))
  stop_stress
  flock -u "$lock"
  exec {lock}>&-
  total=$((total + took))
  [ "$result" = pass ] && passed=$((passed + 1))
  printf 'run %2d/%d: %s in %5.1f s (load before: %s) %s\n' "$i" "$runs" "$result" "$(awk "BEGIN { print $took / 1000 }")" \
    "$load" "$(grep -E '^tests: ' "$logs/run-$i.txt" | tail -1)"
  if [ "$result" = FAIL ]; then
    # The spec reporter lists failures after this line; show them, and any line about a deadline or leftovers.
    sed -n '/failing tests:/,/^seconds per test file/p' "$logs/run-$i.txt" | grep -E '^\s*✖' | sed 's/^/    /' || true
    grep -E 'took more than|left running by the tests' "$logs/run-$i.txt" | sed 's/^/    /' || true
  fi
done
printf 'stress: %d of %d runs passed, %.1f s per run on average; logs in %s\n' "$passed" "$runs" \
  "$(awk "BEGIN { print $total / $runs / 1000 }")" "$logs"
[ "$passed" = "$runs" ]
