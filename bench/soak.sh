#!/usr/bin/env bash
# make soak: the whole pipeline (release api + relay + worker, nisshi, Postgres) under open-loop load for minutes,
# with every series sampled each minute. Reports numbers; asserts nothing.
#   PART=steady (default): half the sustained capacity (SOAK_SUSTAINED, default the figure in
#     bench/results/sustained.md, which make bench PART=sustained writes) for SOAK_MINUTES (default 20), with
#     retention running for outbox rows (ACKBOX_OUTBOX_RETENTION_SECS, 5 min), finished jobs (ACKBOX_JOB_RETENTION_SECS,
#     3 min) and their tombstones (ACKBOX_TOMBSTONE_RETENTION_SECS, 1 min), so every table reaches its steady size
#     before minute 5. Goal: flat, the last 5 minutes within 10 % of minutes 5-10 on every series.
#   PART=overload: twice the sustained capacity for SOAK_MINUTES (default 5 here), then the same probe after the
#     load: how fast the api answers again. Goal: 503s at once instead of a queue, RSS <= 64 MiB, every 202 honoured,
#     normal latency within 10 s of the end.
#   SOAK_RATE=N runs either part at N jobs/s instead; its report is then soak-<part>-N.md, so a stress run at another
#     rate never replaces the run at the defined rate.
# Writes bench/results/soak-<part>.md and .png.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PART="${PART:-steady}"
OUT="$ROOT/bench/results"
WORK="$ROOT/.ackbox/soak"
BIN="$ROOT/target/release"
PG_ADMIN="postgres://postgres@127.0.0.1:5432/postgres"
DB="ackbox_soak"
DB_URL="postgres://postgres@127.0.0.1:5432/$DB"
BROKERS="${KAFKA_BROKERS:-127.0.0.1:9092}"
TOPIC="ackbox.soak.$(date +%s)"
API_PORT=18081
# The sustained capacity the rates derive from: the last make bench PART=sustained on record.
SUSTAINED="${SOAK_SUSTAINED:-$(sed -n 's/^\*\*Sustained: \([0-9]*\) jobs\/s.*/\1/p' "$ROOT/bench/results/sustained.md" 2>/dev/null | head -1)}"
[ -n "$SUSTAINED" ] || { echo "no sustained capacity: run make bench PART=sustained, or set SOAK_SUSTAINED" >&2; exit 2; }
case "$PART" in
  steady) MINUTES="${SOAK_MINUTES:-20}"; DEFAULT_RATE=$((SUSTAINED / 2)) ;;
  overload) MINUTES="${SOAK_MINUTES:-5}"; DEFAULT_RATE=$((SUSTAINED * 2)) ;;
  *) echo "PART must be steady or overload" >&2; exit 2 ;;
esac
RATE="${SOAK_RATE:-$DEFAULT_RATE}"
VENV="$ROOT/.ackbox/bench-venv"
mkdir -p "$OUT" "$WORK"
NAME="soak-$PART${SOAK_RATE:+-$SOAK_RATE}"
REPORT="$OUT/$NAME.md"
SERIES="$WORK/series.tsv"
pids=()
say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
row() { echo "$*" >>"$REPORT"; }
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT

"$ROOT/deploy/local/stack.sh" deps >&2
[ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import matplotlib" 2>/dev/null ||
  { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q -r "$ROOT/bench/requirements.txt"; }
find_broker
# Retention on, with windows short enough that the run sees each table's steady size before minute 5, where the
# flatness comparison starts: published outbox rows after 5 minutes, finished jobs after 3 (the relay's job
# retention) and their tombstones a minute after that. A job's latency is therefore read while it is still there:
# each minute's jobs once they are all done, at the next minute's sample (see e2e_minutes).
export ACKBOX_OUTBOX_RETENTION_SECS="${ACKBOX_OUTBOX_RETENTION_SECS:-300}"
export ACKBOX_JOB_RETENTION_SECS="${ACKBOX_JOB_RETENTION_SECS:-180}"
export ACKBOX_TOMBSTONE_RETENTION_SECS="${ACKBOX_TOMBSTONE_RETENTION_SECS:-60}"
E2E_TSV="$WORK/e2e.tsv"
if [ -z "${SOAK_REPORT_ONLY:-}" ]; then
say "building release binaries"
(cd "$ROOT" && cargo build --release -q -p ackbox-api -p ackbox-relay -p ackbox-worker -p ackbox-cli -p ackbox-bench)
reset_db
start relay; RELAY_PID=$LAST_PID
start worker; WORKER_PID=$LAST_PID
start api; API_PID=$LAST_PID; wait_api
sleep 3 # group join

rss() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status" 2>/dev/null || echo 0; }
fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
size_mib() { sql "SELECT round(pg_total_relation_size('$1') / 1048576.0, 1)"; }
backlog() { sql "SELECT count(*) FROM outbox WHERE published_at IS NULL AND dead_at IS NULL"; }
# The jobs submitted in load minute $1 (the last minute also holds the final instant; $2 bounds what counts as the
# load's, to leave out the recovery probe's jobs).
in_minute() { echo "least(floor(extract(epoch FROM created_at - to_timestamp($T0)) / 60)::int + 1, $MINUTES) = $1 AND created_at <= $2"; }
# Appends "minute|p50 ms|p99 ms|succeeded|other ends" of commit->succeeded for each load minute from NEXT_E2E up to $1
# whose jobs are all done, stopping at the first that is not: read before job retention deletes them. Minute m is
# read at the sample after it, when its oldest job finished about two minutes ago: within the 3 minutes jobs are kept
# (read a minute later, the jobs of a minute's first second had sometimes gone already: 159 of 600,000 at 48d2366).
NEXT_E2E=1
e2e_minutes() { # last minute to try, upper bound of created_at
  while [ "$NEXT_E2E" -le "$1" ]; do
    [ "$(sql "SELECT count(*) FROM jobs WHERE finished_at IS NULL AND $(in_minute "$NEXT_E2E" "$2")")" = 0 ] || return 0
    sql "SELECT $NEXT_E2E,
                coalesce(round((percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - created_at))
                                FILTER (WHERE status = 'succeeded') * 1000)::numeric, 1), 'NaN'),
                coalesce(round((percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - created_at))
                                FILTER (WHERE status = 'succeeded') * 1000)::numeric, 1), 'NaN'),
                count(*) FILTER (WHERE status = 'succeeded'), count(*) FILTER (WHERE status <> 'succeeded')
           FROM jobs WHERE $(in_minute "$NEXT_E2E" "$2")" >>"$E2E_TSV"
    NEXT_E2E=$((NEXT_E2E + 1))
  done
}

say "soak ($PART): $RATE jobs/s for $MINUTES min"
printf 'minute\tapi_rss\trelay_rss\tworker_rss\tbroker_rss\tapi_fds\tjobs_mib\toutbox_mib\tbacklog\ttombstones_mib\n' >"$SERIES"
: >"$E2E_TSV"
T0=$(date +%s)
ACKBOX_API_KEY="$KEY" "$BIN/ackbox-bench" openloop --url "http://127.0.0.1:$API_PORT" --rate "$RATE" \
  --seconds $((MINUTES * 60)) --every 60 >"$WORK/openloop.json" 2>"$WORK/openloop.log" &
LOAD_PID=$!
for m in $(seq 1 "$MINUTES"); do
  sleep $((T0 + m * 60 - $(date +%s)))
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$m" "$(rss "$API_PID")" "$(rss "$RELAY_PID")" \
    "$(rss "$WORKER_PID")" "$(rss "$BROKER_PID")" "$(fds "$API_PID")" "$(size_mib jobs)" "$(size_mib outbox)" \
    "$(backlog)" "$(size_mib job_tombstones)" >>"$SERIES"
  e2e_minutes $((m - 1)) "now()"
done
wait "$LOAD_PID" || true
LOAD_END=$(date +%s.%N)

# After the load: how long until a lone POST is answered as fast as before the soak again (202 within 50 ms).
recovered=""
for i in $(seq 1 300); do
  t=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' -X POST "http://127.0.0.1:$API_PORT/v1/jobs" \
    -H "Authorization: Bearer $KEY" -H 'content-type: application/json' -d '{"kind":"noop","payload":{}}')
  if [ "${t%% *}" = 202 ] && python3 -c "import sys; sys.exit(0 if float('${t#* }') < 0.05 else 1)"; then
    recovered=$(python3 -c "print(f'{$(date +%s.%N) - $LOAD_END:.1f} s')"); break
  fi
  sleep 0.1
done

# Wait for the load's jobs to finish (or 5 minutes): none left unfinished (retention has deleted the oldest, all
# finished), then read the minutes not read yet.
for _ in $(seq 1 600); do
  [ "$(sql "SELECT count(*) FROM jobs WHERE finished_at IS NULL AND created_at <= to_timestamp($LOAD_END)")" = 0 ] && break
  sleep 0.5
done
e2e_minutes "$MINUTES" "to_timestamp($LOAD_END)"
PEAKS="api $(peak_rss_mib "$API_PID") / relay $(peak_rss_mib "$RELAY_PID") / worker $(peak_rss_mib "$WORKER_PID") MiB"
VACUUMS=$(sql "SELECT string_agg(relname || ' ' || (vacuum_count + autovacuum_count), ', ' ORDER BY relname)
                 FROM pg_stat_user_tables WHERE relname IN ('jobs', 'outbox', 'idempotency_keys', 'job_tombstones')")
stop "$API_PID"; stop "$WORKER_PID"; stop "$RELAY_PID"
# What the report needs beyond the series and the load generator's output, so SOAK_REPORT_ONLY=1 can redo it.
printf 'T0=%s\nLOAD_END=%s\nrecovered=%q\nPEAKS=%q\nVACUUMS=%q\nRATE=%s\nMINUTES=%s\nKEY=%q\n' "$T0" "$LOAD_END" \
  "$recovered" "$PEAKS" "$VACUUMS" "$RATE" "$MINUTES" "$KEY" >"$WORK/run.env"
fi
# shellcheck source=/dev/null
source "$WORK/run.env"
accepted=$(json "['accepted']" <"$WORK/openloop.json")
# Succeeded and otherwise ended, minute by minute as read during the run (a minute not read before retention took
# its jobs counts none of them, and shows as a gap).
succeeded=$(awk -F'|' '{s += $4} END {print s + 0}' "$E2E_TSV")
other_ends=$(awk -F'|' '{s += $5} END {print s + 0}' "$E2E_TSV")
E2E=$(cut -d'|' -f1-3 "$E2E_TSV")

: >"$REPORT"
row "# Ackbox soak: $PART"
row ""
row "- date: $(date -u -d "@$T0" +%Y-%m-%dT%H:%M:%SZ); commit: $(git -C "$ROOT" rev-parse --short HEAD); machine: $(nproc) cores"
row "- broker: $BROKER_VERSION, $ACKBOX_TOPIC_PARTITIONS partition(s) per priority lane; Postgres $(psql "$PG_ADMIN" -tAc 'show server_version'), autovacuum $(psql "$PG_ADMIN" -tAc 'show autovacuum') (where it is off, the relay vacuums: ACKBOX_RELAY_VACUUM, relay/README.md)"
row "- vacuums during the run (the relay's, as autovacuum is off here): $VACUUMS"
row "- command: \`make soak PART=$PART\`${SOAK_RATE:+ SOAK_RATE=$SOAK_RATE} (SOAK_MINUTES=$MINUTES): $RATE jobs/s open loop for $MINUTES min (the sustained capacity on record: $SUSTAINED jobs/s); retention: outbox ${ACKBOX_OUTBOX_RETENTION_SECS} s, finished jobs ${ACKBOX_JOB_RETENTION_SECS} s, tombstones ${ACKBOX_TOMBSTONE_RETENTION_SECS} s (each minute's latencies are read once its jobs are done, before retention deletes them)"
row "- sent $(json "['sent']" <"$WORK/openloop.json"), accepted (202) $accepted, refused (503) $(json "['refused_503']" <"$WORK/openloop.json") (slowest 503: $(json "['refused_max_ms']" <"$WORK/openloop.json") ms), other failures $(json "['failed']" <"$WORK/openloop.json"); succeeded $succeeded of the accepted, $other_ends ended otherwise"
row "- after the load, a lone POST was answered 202 within 50 ms again after: ${recovered:-more than 30 s}"
row "- peak RSS: $PEAKS (goal ≤ 64 MiB each)"
row ""
row "| minute | POST p50 / p99 ms | accepted | 503 | commit→succeeded p50 / p99 ms | RSS api / relay / worker / broker MiB | api fds | jobs / outbox / tombstones MiB | backlog |"
row "|---|---|---|---|---|---|---|---|---|"
"$VENV/bin/python" - "$WORK/openloop.json" "$SERIES" "$REPORT" "$OUT/$NAME.png" "$PART" <<'PY' 3<<<"$E2E"
import json, os, sys
load, series_path, report, png, part = sys.argv[1:6]
intervals = json.load(open(load)).get("intervals", [])
e2e = {}
for line in os.fdopen(3).read().split("\n"):
    if line.strip():
        m, p50, p99 = line.split("|")
        e2e[int(m)] = (float(p50), float(p99))
rows = [l.rstrip("\n").split("\t") for l in open(series_path)][1:]
series = {"post_p99": [], "e2e_p50": [], "e2e_p99": [], "api_rss": [], "relay_rss": [], "worker_rss": [],
          "jobs_mib": [], "outbox_mib": [], "tombstones_mib": []}
with open(report, "a") as out:
    for i, r in enumerate(rows):
        m = int(r[0]); iv = intervals[i] if i < len(intervals) else {}
        p50, p99 = e2e.get(m, (float("nan"), float("nan")))
        out.write(f"| {m} | {iv.get('post_p50_ms', '?')} / {iv.get('post_p99_ms', '?')} | {iv.get('accepted', '?')} | "
                  f"{iv.get('refused_503', '?')} | {p50} / {p99} | {r[1]} / {r[2]} / {r[3]} / {r[4]} | {r[5]} | "
                  f"{r[6]} / {r[7]} / {r[9] if len(r) > 9 else '?'} | {r[8]} |\n")
        series["post_p99"].append(iv.get("post_p99_ms", float("nan"))); series["e2e_p50"].append(p50)
        series["e2e_p99"].append(p99)
        for k, col in [("api_rss", 1), ("relay_rss", 2), ("worker_rss", 3), ("jobs_mib", 6), ("outbox_mib", 7),
                       ("tombstones_mib", 9)]:
            series[k].append(float(r[col]) if len(r) > col else float("nan"))
    if part == "steady" and len(rows) >= 20:
        out.write("\nFlatness (mean of the last 5 minutes vs minutes 5-10, goal within ±10 %):\n\n")
        for k, v in series.items():
            early, late = v[4:10], v[-5:]
            e, l = sum(early) / len(early), sum(late) / len(late)
            ratio = (l / e - 1) * 100 if e else float("nan")
            out.write(f"- {k}: {e:.1f} → {l:.1f} ({ratio:+.0f} %)\n")
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
fig, axes = plt.subplots(3, 1, figsize=(9, 9), sharex=True)
x = list(range(1, len(rows) + 1))
for k in ["post_p99", "e2e_p50", "e2e_p99"]:
    axes[0].plot(x, series[k], marker="o", label=k)
axes[0].set_ylabel("ms"); axes[0].set_yscale("log"); axes[0].legend()
for k in ["api_rss", "relay_rss", "worker_rss"]:
    axes[1].plot(x, series[k], marker="o", label=k)
axes[1].set_ylabel("RSS MiB"); axes[1].legend()
for k in ["jobs_mib", "outbox_mib", "tombstones_mib"]:
    axes[2].plot(x, series[k], marker="o", label=k)
axes[2].set_ylabel("table + indexes MiB"); axes[2].set_xlabel("minute"); axes[2].legend()
fig.suptitle(f"make soak PART={part}")
fig.tight_layout(); fig.savefig(png)
PY
say "report: bench/results/$NAME.md, plot: bench/results/$NAME.png"
