#!/usr/bin/env bash
# Celery drain: Redis broker and result backend, the default prefork worker (concurrency = cores).
# Usage: run.sh JOBS. Preloads JOBS `noop` tasks (not timed), then starts one worker and times the drain.
# Prints one JSON line: {"system": ..., "jobs": N, "seconds": S, "per_second": R, "machine_cores": C}.
set -euo pipefail
# Busy CPU seconds of the whole machine so far (what the drain costs, next to its duration).
busy() { awk -v hz="$(getconf CLK_TCK)" '/^cpu / {printf "%.2f", ($2 + $3 + $4 + $7 + $8) / hz}' /proc/stat; }
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
JOBS="${1:-100000}"
VENV="$ROOT/.ackbox/bench-venv"
cd "$HERE"

# Installed from PyPI on first run (bench/requirements.txt pins Celery).
[ -x "$VENV/bin/celery" ] && "$VENV/bin/python" -c "import matplotlib" 2>/dev/null || { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q -r "$ROOT/bench/requirements.txt" >&2; }
redis-cli -n 5 FLUSHDB >/dev/null
redis-cli -n 6 FLUSHDB >/dev/null
"$VENV/bin/python" tasks.py "$JOBS"

t0=$(date +%s.%N); b0=$(busy)
"$VENV/bin/celery" -A tasks worker --loglevel=warning >/dev/null 2>"$HERE/.log" &
worker=$!
deadline=$((SECONDS + ${DRAIN_TIMEOUT:-900}))
while [ "$(redis-cli -n 6 DBSIZE)" -lt "$JOBS" ]; do
  [ "$SECONDS" -lt "$deadline" ] || { kill "$worker"; echo "celery did not drain in time" >&2; exit 1; }
  sleep 0.2
done
t1=$(date +%s.%N); b1=$(busy)
kill -TERM "$worker"; wait "$worker" 2>/dev/null || true
python3 - "$JOBS" "$t0" "$t1" "$b0" "$b1" <<'PY'
import json, sys
jobs, t0, t1, b0, b1 = int(sys.argv[1]), *map(float, sys.argv[2:6])
s = t1 - t0
print(json.dumps({"system": "Celery 5.7.0 (prefork, Redis broker + backend)", "jobs": jobs, "seconds": round(s, 1),
                  "per_second": int(jobs / s), "machine_cores": round((b1 - b0) / s, 2)}))
PY
redis-cli -n 5 FLUSHDB >/dev/null
redis-cli -n 6 FLUSHDB >/dev/null
