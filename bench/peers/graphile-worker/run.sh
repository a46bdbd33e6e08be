#!/usr/bin/env bash
# graphile-worker drain, the way its own perfTest runs it: one process, `--once -j 24 -m 25`, same Postgres.
# Usage: run.sh JOBS. Preloads JOBS `noop` jobs with SQL (not timed), then times the drain.
# Prints one JSON line: {"system": ..., "jobs": N, "seconds": S, "per_second": R, "machine_cores": C, "peak_rss_mib": M}.
set -euo pipefail
# Busy CPU seconds of the whole machine so far (what the drain costs, next to its duration).
busy() { awk -v hz="$(getconf CLK_TCK)" '/^cpu / {printf "%.2f", ($2 + $3 + $4 + $7 + $8) / hz}' /proc/stat; }
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
JOBS="${1:-100000}"
DB="ackbox_bench_graphile"
PG_ADMIN="${PG_ADMIN:-postgres://postgres@127.0.0.1:5432/postgres}"
URL="${PG_ADMIN%/*}/$DB"
cd "$HERE"

# Installed from npm on first run; package-lock.json pins every version.
[ -x node_modules/.bin/graphile-worker ] || npm ci --no-audit --no-fund --loglevel=error >&2

psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -qc "CREATE DATABASE $DB"
node_modules/.bin/graphile-worker -c "$URL" --schema-only >&2
# Its own bulk path: add_jobs with an array of job specs (one insert; add_job per row took minutes for 100k).
psql "$URL" -qc "SELECT count(*) FROM graphile_worker.add_jobs(ARRAY(
  SELECT ROW('noop', json_build_object('id', i), NULL, NULL, NULL, NULL, NULL, NULL)::graphile_worker.job_spec
    FROM generate_series(1, $JOBS) i))" >/dev/null
psql "$URL" -qc "VACUUM ANALYZE" >/dev/null

t0=$(date +%s.%N); b0=$(busy)
/usr/bin/time -f '%M' -o "$HERE/.rss" node_modules/.bin/graphile-worker -c "$URL" --once -j 24 -m 25 >/dev/null 2>"$HERE/.log" ||
  { echo "graphile-worker failed; see $HERE/.log" >&2; exit 1; }
t1=$(date +%s.%N); b1=$(busy)
left=$(psql "$URL" -tAc "SELECT count(*) FROM graphile_worker.jobs")
[ "$left" = 0 ] || { echo "graphile-worker exited with $left jobs left" >&2; exit 1; }
python3 - "$JOBS" "$t0" "$t1" "$b0" "$b1" "$(cat "$HERE/.rss")" <<'PY'
import json, sys
jobs, t0, t1, b0, b1, rss_kib = int(sys.argv[1]), *map(float, sys.argv[2:6]), int(sys.argv[6])
s = t1 - t0
print(json.dumps({"system": "graphile-worker 0.17.3 (-j 24 -m 25)", "jobs": jobs, "seconds": round(s, 1),
                  "per_second": int(jobs / s), "machine_cores": round((b1 - b0) / s, 2), "peak_rss_mib": round(rss_kib / 1024, 1)}))
PY
psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)"
