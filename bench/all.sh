#!/usr/bin/env bash
# Run every bench in bench/ (not in CI) and exit non-zero if any of them fails.
#
#   bench/all.sh                       # full size, SQLite
#   BENCH_DB=postgresql bench/all.sh   # every bench that takes --db, on PostgreSQL
#   BENCH_SMOKE=1 bench/all.sh         # reduced sizes: proves the benches work, not reference figures
#
# Each bench starts its own gunicorn on 127.0.0.1, prints JSON and a one-line summary, and stops its
# servers. Outputs go to $BENCH_RESULTS (default /tmp/foyer-bench-results-<time>); the summaries are
# repeated at the end. Known benches that are not present yet are skipped with a note; any other
# bench/*.py (except helpers starting with "_", hello_app.py, and suite_cpu.py, which measures the test
# suite rather than Foyer: run it by hand) runs too, with its defaults.
set -u
cd "$(dirname "$0")/.."
PY=.venv/bin/python
DB=${BENCH_DB:-sqlite}
SMOKE=${BENCH_SMOKE:-0}
RESULTS=${BENCH_RESULTS:-/tmp/foyer-bench-results-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$RESULTS"

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 2; }

known=(throughput latency microsoft_latency registration_rush reminder_dispatch registrant_table)

args_for() {  # the size arguments of a bench in smoke mode (full size: the bench's defaults)
  if [ "$SMOKE" != "1" ]; then return; fi
  case "$1" in
    throughput) echo "--runs 3 --seconds 3" ;;
    latency) echo "--rate 50 --seconds 15" ;;
    microsoft_latency) echo "--runs 3 --seconds 3" ;;
    registration_rush) echo "--clients 200 --capacity 20 --concurrency 100" ;;
  esac
}

benches=()
for name in "${known[@]}"; do
  if [ -f "bench/$name.py" ]; then benches+=("$name"); else echo "note: bench/$name.py is not present; skipped"; fi
done
for file in bench/*.py; do
  name=$(basename "$file" .py)
  case "$name" in _*|hello_app|suite_cpu) continue ;; esac
  case " ${known[*]} " in *" $name "*) continue ;; esac
  benches+=("$name")
done

failed=()
summaries=()
for name in "${benches[@]}"; do
  extra=$(args_for "$name")
  if $PY "bench/$name.py" --help 2>/dev/null | grep -q -- "--db"; then extra="--db $DB $extra"; fi
  echo "== bench/$name.py $extra"
  # shellcheck disable=SC2086  # word splitting of $extra is intended
  $PY "bench/$name.py" $extra >"$RESULTS/$name.out" 2>"$RESULTS/$name.err"
  status=$?
  line=$(grep -E '^(OK|FAIL)' "$RESULTS/$name.out" | tail -n 1)
  [ -n "$line" ] || line="(no summary; exit $status, see $RESULTS/$name.err)"
  echo "$line"
  summaries+=("$name: $line")
  if [ $status -ne 0 ]; then failed+=("$name"); fi
done

echo
echo "== summary ($DB$([ "$SMOKE" = 1 ] && echo ', smoke sizes'); outputs in $RESULTS)"
printf '%s\n' "${summaries[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
echo "all benches passed"
