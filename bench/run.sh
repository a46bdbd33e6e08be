#!/usr/bin/env bash
# make bench: Ackbox measured next to its physical ceilings on this machine. Reports numbers; asserts nothing.
# PART=all|ceilings|accept|batch|latency|recovery|drain|peers|scaleout|sustained|profile (default all: every part but profile),
# or several, comma-separated.
# Writes bench/results/latest.md and bench/results/latest.png (and bench/results/sustained.md when it measured the
# sustained capacity).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PART="${PART:-all}"
OUT="$ROOT/bench/results"
WORK="$ROOT/.ackbox/bench"
BIN="$ROOT/target/release"
PG_ADMIN="postgres://postgres@127.0.0.1:5432/postgres"
DB="ackbox_bench"
DB_URL="postgres://postgres@127.0.0.1:5432/$DB"
BROKERS="${KAFKA_BROKERS:-127.0.0.1:9092}"
TOPIC="ackbox.bench.$(date +%s)"
API_PORT=18080
DURATION="${BENCH_SECONDS:-10}"
DRAIN_JOBS="${DRAIN_JOBS:-100000}"
PEER_JOBS="${PEER_JOBS:-$DRAIN_JOBS}"
# The drain's second run: settings for draining backlogs (deploy/README.md, sizing). Space-separated NAME=value.
DRAIN_TUNING="${DRAIN_TUNING:-ACKBOX_WORKER_CONCURRENCY=1024 ACKBOX_WORKER_BATCH=512 ACKBOX_KAFKA_FETCH_WAIT_MS=100 ACKBOX_RELAY_BATCH=2000 ACKBOX_RELAY_CONCURRENCY=4}"
SCALE_JOBS="${SCALE_JOBS:-30000}"
# Partitions per lane of the scale-out part's own topic: up to 4 workers share a lane there.
SCALE_PARTITIONS="${SCALE_PARTITIONS:-4}"
VENV="$ROOT/.ackbox/bench-venv"
mkdir -p "$OUT" "$WORK"
REPORT="$WORK/report.md"
DATA="$WORK/data.tsv" # section<TAB>label<TAB>value, for the plot
: >"$REPORT"
: >"$DATA"
pids=()

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
row() { echo "$*" >>"$REPORT"; }
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
# CPU seconds so far of api, relay, worker, broker, every postgres process, and the machine's busy total.
cpu_snapshot() {
  echo "$(cpu_secs "$API_PID") $(cpu_secs "$RELAY_PID") $(cpu_secs "$WORKER_PID") $(cpu_secs "$BROKER_PID") $(postgres_cpu) $(machine_busy)"
}
# CPU seconds so far of every postgres process (those that exited meanwhile are not counted: the services' pools keep
# their connections, so the backends that do the work live through a step).
# One read of every /proc/<pid>/stat: this runs inside timed windows, so it must not start a process per backend
# (a python3 for each of ~20 backends took ~0.5 s of the drain's clock, and its CPU).
postgres_cpu() {
  local stats=() p
  for p in $(pgrep -x postgres); do stats+=("/proc/$p/stat"); done
  [ ${#stats[@]} -gt 0 ] || { echo 0; return; }
  cat "${stats[@]}" 2>/dev/null | awk -v hz="$(getconf CLK_TCK)" '{s += $14 + $15} END {printf "%.2f", s / hz}'
}
# µs of CPU per job per process between two snapshots: "api | relay | worker | broker | Postgres | machine".
cpu_per_job() {
  python3 -c "
a=[float(x) for x in '$1'.split()]; b=[float(x) for x in '$2'.split()]; n=max(int('$3' or 0), 1)
print(' | '.join(f'{(y-x)/n*1e6:.0f}' for x, y in zip(a, b)))"
}
CPU_ROWS=()
datum() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$DATA"; }
# PART may name several parts, comma-separated (PART=drain,peers: the drain beside its peers in one run).
want() { [[ ",$PART," == *",$1,"* || ( "$PART" == all && "$1" != profile ) ]]; }
# pgbench script: N noop jobs and their N outbox rows in one transaction (two multi-row INSERTs), for tenant $TENANT.
batch_sql() {
  cat >"$2" <<SQL
BEGIN;
INSERT INTO jobs (id, tenant_id, kind, payload, max_attempts)
  SELECT gen_random_uuid(), '$TENANT', 'noop', '{}', 3 FROM generate_series(1, $1);
INSERT INTO outbox (aggregate_id, topic, key, payload, headers)
  SELECT gen_random_uuid(), '$TOPIC', 'k', '{"v":1,"job_id":"x","kind":"noop","attempt":1}', '{"ackbox-kind":"noop"}'
    FROM generate_series(1, $1);
COMMIT;
SQL
}

cleanup() { for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

"$ROOT/deploy/local/stack.sh" deps >&2
# Load generator and profiler from Debian's packages, installed on first run.
need=()
command -v wrk >/dev/null || need+=(wrk)
want profile && ! command -v perf >/dev/null && need+=(linux-perf)
[ ${#need[@]} -eq 0 ] || { say "installing ${need[*]}"; apt-get install -y -qq "${need[@]}" >/dev/null; }
[ -x "$VENV/bin/celery" ] && "$VENV/bin/python" -c "import matplotlib" 2>/dev/null ||
  { say "installing bench/requirements.txt into $VENV"; python3 -m venv "$VENV" && "$VENV/bin/pip" install -q -r "$ROOT/bench/requirements.txt"; }
find_broker
say "building release binaries"
(cd "$ROOT" && cargo build --release -q -p ackbox-api -p ackbox-relay -p ackbox-worker -p ackbox-cli -p ackbox-bench)







row "# Ackbox benchmark"
row ""
row "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ); commit: $(git -C "$ROOT" rev-parse --short HEAD)"
row "- machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; $(uname -sr)"
row "- Postgres: $(psql "$PG_ADMIN" -tAc 'show server_version'); synchronous_commit=$(psql "$PG_ADMIN" -tAc 'show synchronous_commit'); shared_buffers=$(psql "$PG_ADMIN" -tAc 'show shared_buffers'); max_connections=$(psql "$PG_ADMIN" -tAc 'show max_connections')"
row "- broker: $BROKER_VERSION (pid $BROKER_PID), sqlite storage (durable), on loopback; relay: idempotent producer ${ACKBOX_RELAY_IDEMPOTENCE:-true}, ${ACKBOX_RELAY_MAX_IN_FLIGHT:-5} in flight; topics: $ACKBOX_TOPIC_PARTITIONS partition(s) per priority lane (scale-out: $SCALE_PARTITIONS)"
row "- command: \`make bench PART=$PART\` (release build; each step ${DURATION}s)"
row ""

declare -A PGTPS PEER_RATE
if want ceilings || want accept; then
  say "ceilings: pgbench with the API's transaction"
  reset_db
  TENANT=$(sql "SELECT id FROM tenants WHERE name = 'bench'")
  cat >"$WORK/submit.sql" <<SQL
BEGIN;
INSERT INTO jobs (id, tenant_id, kind, payload, max_attempts) VALUES (gen_random_uuid(), '$TENANT', 'noop', '{}', 3);
INSERT INTO outbox (aggregate_id, topic, key, payload, headers)
  VALUES (gen_random_uuid(), '$TOPIC', 'k', '{"v":1,"job_id":"x","kind":"noop","attempt":1}', '{"ackbox-kind":"noop"}');
COMMIT;
SQL
  row "## 1. Ceilings"
  row ""
  row "| what | clients | rate |"
  row "|---|---|---|"
  for c in 1 8 32 64; do
    tps=$(pgbench -n -f "$WORK/submit.sql" -c "$c" -j 2 -T "$DURATION" "$DB_URL" 2>/dev/null | awk '/^tps/ {print int($3); exit}')
    PGTPS[$c]=$tps
    row "| pgbench: job insert + outbox insert (+ NOTIFY trigger), one transaction | $c | $tps tx/s |"
  done
  # The NOTIFY's cost (#14): Postgres serialises committing transactions that NOTIFY on one lock. The same
  # transaction with the trigger disabled, and 50 jobs per transaction (one NOTIFY per statement, as the trigger is
  # FOR EACH STATEMENT), show how much of the ceiling that lock takes.
  sql "ALTER TABLE outbox DISABLE TRIGGER outbox_notify" >/dev/null
  for c in 8 32 64; do
    tps=$(pgbench -n -f "$WORK/submit.sql" -c "$c" -j 2 -T "$DURATION" "$DB_URL" 2>/dev/null | awk '/^tps/ {print int($3); exit}')
    row "| pgbench: the same transaction without the NOTIFY trigger | $c | $tps tx/s |"
  done
  sql "ALTER TABLE outbox ENABLE TRIGGER outbox_notify" >/dev/null
  batch_sql 50 "$WORK/submit50.sql"
  for c in 8 64; do
    tps=$(pgbench -n -f "$WORK/submit50.sql" -c "$c" -j 2 -T "$DURATION" "$DB_URL" 2>/dev/null | awk '/^tps/ {print $3; exit}')
    row "| pgbench: 50 jobs + 50 outbox rows per transaction (+ NOTIFY trigger) | $c | $(python3 -c "print(int($tps * 50))") jobs/s ($(python3 -c "print(int($tps))") tx/s) |"
  done
  # A topic of its own, so the later parts start from an empty one.
  prod=$("$BIN/ackbox-bench" produce --brokers "$BROKERS" --topic "$TOPIC.ceiling" --messages 50000 --batch 500)
  row "| rdkafka producer, relay settings (idempotent, acks=all, linger 0, 500 in flight) | 1 | $(echo "$prod" | json "['per_second']") msg/s |"
  row ""
fi

if want accept; then
  say "accept path: POST /v1/jobs closed loop with wrk"
  reset_db
  start api; API_PID=$LAST_PID; wait_api
  cat >"$WORK/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"kind":"noop","payload":{}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $KEY"
LUA
  row "## 2. Accept path (POST /v1/jobs, closed loop, wrk on loopback)"
  row ""
  row "Group commit: concurrent submits share a transaction (\`ackbox_submit_batch_size\`). Goal: ≥ 2 × pgbench of the"
  row "single-job transaction at 64 connections, no fall-off from 8 to 64, p99 at 64 ≤ 50 ms."
  row ""
  row "| connections | POST/s | p50 | p99 | pgbench tx/s (same clients) | ratio |"
  row "|---|---|---|---|---|---|"
  for c in 8 32 64; do
    out=$(wrk -t2 -c"$c" -d"${DURATION}s" --latency -s "$WORK/post.lua" "http://127.0.0.1:$API_PORT/v1/jobs" 2>&1)
    rps=$(echo "$out" | awk '/Requests\/sec/ {print int($2)}')
    p50=$(echo "$out" | awk '$1=="50%" {print $2}')
    p99=$(echo "$out" | awk '$1=="99%" {print $2}')
    non2xx=$(echo "$out" | awk '/Non-2xx/ {print $4}')
    base=${PGTPS[$c]:-}
    ratio=$([ -n "$base" ] && python3 -c "print(f'{$rps/$base:.2f}')" || echo "n/a")
    row "| $c | $rps${non2xx:+ ($non2xx non-2xx)} | $p50 | $p99 | ${base:-not measured} | $ratio |"
    ACCEPT_RATE=$rps ACCEPT_CONNS=$c
  done
  row ""
  row "api peak RSS during the accept test: $(peak_rss_mib "$API_PID") MiB (goal ≤ 64)"
  row ""
  stop "$API_PID"
fi

if want batch; then
  # POST /v1/jobs/batch (#16): 1000 noop jobs per request, one transaction each, closed loop. Beside it, pgbench of
  # the same 1000-job transaction (two multi-row INSERTs) in the same run: the ceiling of the endpoint's design.
  say "batch submit: POST /v1/jobs/batch, 1000 jobs per request"
  reset_db
  TENANT=$(sql "SELECT id FROM tenants WHERE name = 'bench'")
  batch_sql 1000 "$WORK/submit1000.sql"
  start api; API_PID=$LAST_PID; wait_api
  python3 - "$WORK/batch.lua" "$KEY" <<'PY'
import json, sys
body = json.dumps({"jobs": [{"kind": "noop", "payload": {}} for _ in range(1000)]})
open(sys.argv[1], "w").write(f'''wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {sys.argv[2]}"
''')
PY
  row "## 2b. Batch submit (POST /v1/jobs/batch, 1000 noop jobs per request, closed loop, wrk on loopback)"
  row ""
  row "Each request is one transaction, all or nothing. Goal: ≥ 20,000 jobs/s accepted."
  row ""
  row "| connections | requests/s | jobs/s | p50 | p99 | pgbench, same 1000-job transaction (jobs/s) | ratio |"
  row "|---|---|---|---|---|---|---|"
  for c in 1 2 4 8; do
    out=$(wrk -t1 -c"$c" -d"${DURATION}s" --latency -s "$WORK/batch.lua" "http://127.0.0.1:$API_PORT/v1/jobs/batch" 2>&1)
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p50=$(echo "$out" | awk '$1=="50%" {print $2}')
    p99=$(echo "$out" | awk '$1=="99%" {print $2}')
    non2xx=$(echo "$out" | awk '/Non-2xx/ {print $4}')
    jobs=$(python3 -c "print(int($rps * 1000))")
    tps=$(pgbench -n -f "$WORK/submit1000.sql" -c "$c" -j 1 -T "$DURATION" "$DB_URL" 2>/dev/null | awk '/^tps/ {print $3; exit}')
    pg=$(python3 -c "print(int($tps * 1000))")
    row "| $c | $rps${non2xx:+ ($non2xx non-2xx)} | $jobs | $p50 | $p99 | $pg | $(python3 -c "print(f'{$jobs/max($pg,1):.2f}')") |"
    if [ "$jobs" -gt "${BATCH_RATE:-0}" ]; then BATCH_RATE=$jobs BATCH_CONNS=$c; fi
  done
  row ""
  row "Best: **$BATCH_RATE jobs/s** at $BATCH_CONNS connections ($([ "$BATCH_RATE" -ge 20000 ] && echo "meets" || echo "misses") the 20,000 goal); api peak RSS $(peak_rss_mib "$API_PID") MiB (goal ≤ 64)."
  row ""
  stop "$API_PID"
fi

if want latency; then
  say "end-to-end latency: open loop, noop jobs"
  reset_db
  start relay; RELAY_PID=$LAST_PID
  start worker; WORKER_PID=$LAST_PID
  start api; API_PID=$LAST_PID; wait_api
  sleep 3 # group join and partition assignment
  row "## 3. End-to-end latency (open loop, noop; from the job's own timestamps)"
  row ""
  row "| rate | accepted | POST p50 / p99 (client) | commit→succeeded p50 | p99 | commit→Kafka ack p50 | ack→worker claim p50 | claim→status commit p50 |"
  row "|---|---|---|---|---|---|---|---|"
  for rate in ${LATENCY_RATES:-50 200 1000}; do
    sql "TRUNCATE jobs, outbox" >/dev/null
    cpu0=$(cpu_snapshot)
    ol=$(ACKBOX_API_KEY="$KEY" "$BIN/ackbox-bench" openloop --url "http://127.0.0.1:$API_PORT" --rate "$rate" --seconds "$DURATION")
    total=$(echo "$ol" | json "['accepted']")
    for _ in $(seq 1 600); do
      done_n=$(sql "SELECT count(*) FROM jobs WHERE status = 'succeeded'")
      [ "$done_n" -ge "$total" ] && break
      sleep 0.1
    done
    CPU_ROWS+=("| $rate/s | $(cpu_per_job "$cpu0" "$(cpu_snapshot)" "$done_n") |")
    [ "$done_n" -ge "$total" ] || row "| $rate/s | $total | (only $done_n succeeded within 60 s; figures below cover those) |||||| "
    stats=$(sql "
      SELECT round((percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM j.finished_at - j.created_at)) * 1000)::numeric, 1) || ' ms|' ||
             round((percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM j.finished_at - j.created_at)) * 1000)::numeric, 1) || ' ms|' ||
             round((percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM o.published_at - j.created_at)) * 1000)::numeric, 1) || ' ms|' ||
             round((percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM j.started_at - o.published_at)) * 1000)::numeric, 1) || ' ms|' ||
             round((percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM j.finished_at - j.started_at)) * 1000)::numeric, 1) || ' ms'
        FROM jobs j JOIN outbox o ON o.aggregate_id = j.id WHERE j.status = 'succeeded'")
    row "| $rate/s | $total | $(echo "$ol" | json "['post_p50_ms']") / $(echo "$ol" | json "['post_p99_ms']") ms | ${stats//|/ | } |"
    datum p50 "$rate" "$(echo "$stats" | cut -d'|' -f1 | cut -d' ' -f1)"
    datum p99 "$rate" "$(echo "$stats" | cut -d'|' -f2 | cut -d' ' -f1)"
  done
  row ""
  row "Goal at 200/s: p50 ≤ 10 ms and p99 ≤ 30 ms (commit→succeeded)."
  row ""
  row "CPU per job (µs, user + system, over the step until its last job succeeded; *machine* is every process, the"
  row "load generator included). What an SRE sizes a fleet with: jobs/s per core of a tier = 10⁶ ÷ its µs (at low"
  row "rates fixed costs, polls and heartbeats, weigh more per job)."
  row ""
  row "| rate | api | relay | worker | broker | Postgres | machine |"
  row "|---|---|---|---|---|---|---|"
  for r in "${CPU_ROWS[@]}"; do row "$r"; done
  row ""
  stop "$API_PID"; stop "$WORKER_PID"; stop "$RELAY_PID"
fi

# Seconds from $1 (epoch seconds) until SQL $2 (a count) reaches $3, or "> N s" at the deadline.
seconds_until() {
  local t0=$1 query=$2 want=$3 deadline=$((SECONDS + ${4:-120}))
  while [ "$(sql "$query")" -lt "$want" ]; do
    [ "$SECONDS" -lt "$deadline" ] || { echo "> ${4:-120} s"; return; }
    sleep 0.05
  done
  python3 -c "print(f'{$(date +%s.%N) - $t0:.2f} s')"
}

if want recovery; then
  say "recovery: kill -9 the worker, restart it, time to its first finished job"
  row "## 3b. A killed worker back at work (kill -9, 50 jobs queued meanwhile, restart)"
  row ""
  row "| membership | restart → first job done | restart → all 50 done |"
  row "|---|---|---|"
  for mode in static dynamic; do
    reset_db
    if [ "$mode" = static ]; then export ACKBOX_WORKER_INSTANCE_ID="bench-worker-1"; else unset ACKBOX_WORKER_INSTANCE_ID; fi
    start relay; RELAY_PID=$LAST_PID
    start worker; WORKER_PID=$LAST_PID
    start api; API_PID=$LAST_PID; wait_api
    post() { curl -fsS -o /dev/null -X POST "http://127.0.0.1:$API_PORT/v1/jobs" -H "Authorization: Bearer $KEY" \
      -H 'content-type: application/json' -d '{"kind":"noop","payload":{}}'; }
    post
    seconds_until "$(date +%s.%N)" "SELECT count(*) FROM jobs WHERE status = 'succeeded'" 1 60 >/dev/null
    kill -KILL "$WORKER_PID"; wait "$WORKER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do post; done
    t0=$(date +%s.%N)
    start worker; WORKER_PID=$LAST_PID
    first=$(seconds_until "$t0" "SELECT count(*) FROM jobs WHERE status = 'succeeded' AND finished_at > to_timestamp($t0)" 1)
    all=$(seconds_until "$t0" "SELECT count(*) FROM jobs WHERE status = 'succeeded' AND finished_at > to_timestamp($t0)" 50)
    label=$([ "$mode" = static ] && echo "static (ACKBOX_WORKER_INSTANCE_ID set, as make up and deploy/ do)" ||
      echo "dynamic (no instance id; the group waits out the killed member's session, 45 s)")
    row "| $label | **$first** | $all |"
    stop "$API_PID"; stop "$WORKER_PID"; stop "$RELAY_PID"
  done
  unset ACKBOX_WORKER_INSTANCE_ID
  row ""
  row "Goal: a killed worker back at work ≤ 5 s after its restart."
  row ""
fi

if [ -f "$ROOT/.ackbox/first-run.tsv" ] && [ "$PART" = all ]; then
  fr() { awk -F'\t' -v k="$1" '$1 == k {print $2}' "$ROOT/.ackbox/first-run.tsv"; }
  row "## 3c. First run on this machine (recorded by \`deploy/local/stack.sh\` when it installed the broker)"
  row ""
  row "| when | workspace build (debug) | broker install beside it, both done | whole \`make up\` |"
  row "|---|---|---|---|"
  mu=$(fr make_up_s)
  row "| $(fr date) | $(fr workspace_build_s) s | $(fr broker_install_and_build_s) s | ${mu:+$mu s}${mu:-not recorded (install ran from make test)} |"
  row ""
elif [ "$PART" = all ]; then
  row "## 3c. First run on this machine"
  row ""
  row "Not recorded here: the broker on this machine was not installed by \`deploy/local/stack.sh\` (which records it in"
  row "\`.ackbox/first-run.tsv\`). The README's set-up section gives the times measured on a new machine."
  row ""
fi


# ackbox_drain JOBS WORKERS RELAYS: preload, start the processes, time until every job has succeeded.
# Sets DRAIN_SECS, DRAIN_RATE, DRAIN_NOTE, DRAIN_CPU (cores used per component over the drain) and the peak RSS.
ackbox_drain() {
  local jobs=$1 workers=$2 relays=$3 procs=() wpids=() rpids=()
  reset_db
  PRELOAD=$(DATABASE_URL="$DB_URL" "$BIN/ackbox-bench" preload --jobs "$jobs" --topic "$TOPIC" | json "['seconds']")
  sql "VACUUM ANALYZE jobs, outbox" >/dev/null
  # Create the topic first, so the worker processes do not race the relay for it.
  "$BIN/ackbox-bench" produce --brokers "$BROKERS" --topic "$TOPIC" --messages 0 \
    --partitions "$ACKBOX_TOPIC_PARTITIONS" >/dev/null
  local t0 b0 k0 broker0 pg0 n=0
  # Where Postgres spends the drain, by statement, where pg_stat_statements is loaded (shared_preload_libraries).
  PGSS=""
  if psql "$PG_ADMIN" -tAc 'show shared_preload_libraries' | grep -q pg_stat_statements; then
    sql "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
    sql "SELECT pg_stat_statements_reset()" >/dev/null
    PGSS=1
  fi
  # The CPU counters first, then the clock: the drain's time starts as the processes do, like a peer's.
  b0=$(machine_busy); broker0=$(cpu_secs "$BROKER_PID"); pg0=$(postgres_cpu); t0=$(date +%s.%N)
  for _ in $(seq 1 "$relays"); do start relay; rpids+=("$LAST_PID"); done
  for _ in $(seq 1 "$workers"); do start worker; wpids+=("$LAST_PID"); done
  local deadline=$((SECONDS + ${DRAIN_TIMEOUT:-600}))
  DRAIN_NOTE=""
  # Done when no job is queued or running, asked through the index of live jobs, jobs_open_idx (the two partial
  # indexes it replaced took 7.8 ms a call in the 20:35Z drain of bench/findings.md, mostly dead index entries between
  # vacuums). A count(*) of the whole table every 0.1 s (what this loop did before: 41 ms a call at 100,000 jobs)
  # took a large share of a core on its own, which the peers, whose runs end by themselves, do not pay.
  while :; do
    [ "$(sql "SELECT EXISTS (SELECT 1 FROM jobs WHERE finished_at IS NULL)")" = f ] && break
    if [ "$SECONDS" -ge "$deadline" ]; then break; fi
    sleep 0.1
  done
  local t1 wall done_at; t1=$(date +%s.%N)
  n=$(sql "SELECT count(*) FROM jobs WHERE status = 'succeeded'")
  [ "$n" -ge "$jobs" ] || DRAIN_NOTE="only $n of $jobs succeeded$([ "$SECONDS" -ge "$deadline" ] && echo " within ${DRAIN_TIMEOUT:-600} s")"
  # The drain ends when its last job finished (its own timestamp, same clock), not when this loop next looked: a
  # peer's run ends when its process exits after its last job, with no polling lag either.
  done_at=$(sql "SELECT coalesce(extract(epoch FROM max(finished_at)), $t1) FROM jobs")
  wall=$(python3 -c "print(min($done_at, $t1) - $t0)")
  DRAIN_SECS=$(python3 -c "print(f'{$wall:.1f}')")
  DRAIN_RATE=$(python3 -c "print(int($n/$wall))")
  local rc=0 wc=0 p
  for p in "${rpids[@]}"; do rc=$(python3 -c "print($rc+$(cpu_secs "$p"))"); done
  for p in "${wpids[@]}"; do wc=$(python3 -c "print($wc+$(cpu_secs "$p"))"); done
  local tc busy; tc=$(python3 -c "print($(cpu_secs "$BROKER_PID")-$broker0)"); busy=$(python3 -c "print($(machine_busy)-$b0)")
  # Cores used: relay / worker / broker / the rest (Postgres, mostly) / machine.
  # Over the loop's whole window, which the CPU figures cover.
  DRAIN_CPU=$(python3 -c "w=$t1-$t0; r,k,t,b=$rc,$wc,$tc,$busy; print(f'{r/w:.2f} / {k/w:.2f} / {t/w:.2f} / {max(b-r-k-t,0)/w:.2f} / {b/w:.2f}')")
  # CPU per job, in microseconds: the broker's alone, and the whole machine's.
  local pgc; pgc=$(python3 -c "print($(postgres_cpu)-$pg0)")
  DRAIN_US=$(python3 -c "n=max($n,1); print(f'broker {$tc/n*1e6:.0f} µs, Postgres {$pgc/n*1e6:.0f} µs, machine {$busy/n*1e6:.0f} µs')")
  RELAY_RSS=$(peak_rss_mib "${rpids[0]}"); WORKER_RSS=$(peak_rss_mib "${wpids[0]}")
  for p in "${wpids[@]}" "${rpids[@]}"; do stop "$p"; done
  STATEMENTS=""
  # An `if`, not `[ ] &&`: as the function's last command a false test would be its status, and set -e would end
  # the run wherever pg_stat_statements is not loaded.
  if [ -n "$PGSS" ]; then STATEMENTS=$(sql "
    SELECT round(total_exec_time::numeric / $n * 1000, 1), calls, round(rows::numeric / greatest(calls, 1), 1),
           round(wal_bytes::numeric / $n), regexp_replace(left(query, 110), '\\s+', ' ', 'g')
      FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = '$DB')
     ORDER BY total_exec_time DESC LIMIT 10"); fi
}

if want drain; then
  row "## 4. Drain ($DRAIN_JOBS preloaded noop jobs; only the drain is timed)"
  row ""
  row "| system | jobs | time | jobs/s | cores used: relay / worker / broker / Postgres+rest / machine |"
  row "|---|---|---|---|---|"
  say "drain: $DRAIN_JOBS preloaded noop jobs, 1 relay + 1 worker, default settings"
  ackbox_drain "$DRAIN_JOBS" 1 1
  ACKBOX_DEFAULT_RATE=$DRAIN_RATE
  row "| Ackbox, default settings (1 relay + 1 worker, $ACKBOX_TOPIC_PARTITIONS partition(s) per lane; CPU per job: $DRAIN_US) | $DRAIN_JOBS | $DRAIN_SECS s | $DRAIN_RATE${DRAIN_NOTE:+ ($DRAIN_NOTE)} | $DRAIN_CPU |"
  datum drain "Ackbox defaults (1 relay + 1 worker)" "$DRAIN_RATE"
  # The same drain with the settings a deployment that drains backlogs would choose (deploy/README.md, sizing), as
  # the peers run with theirs (graphile-worker -j 24 -m 25): more jobs claimed per statement and in flight, bigger
  # relay rounds, and a longer fetch wait (on nisshi a fetch polls storage within it, a cost per wait, not per job).
  say "drain: the same, with the throughput settings: $DRAIN_TUNING"
  for kv in $DRAIN_TUNING; do export "${kv?}"; done
  ackbox_drain "$DRAIN_JOBS" 1 1
  for kv in $DRAIN_TUNING; do unset "${kv%%=*}"; done
  ACKBOX_DRAIN_RATE=$DRAIN_RATE
  row "| Ackbox, throughput settings (\`${DRAIN_TUNING// /\` \`}\`; CPU per job: $DRAIN_US) | $DRAIN_JOBS | $DRAIN_SECS s | $DRAIN_RATE${DRAIN_NOTE:+ ($DRAIN_NOTE)} | $DRAIN_CPU |"
  datum drain "Ackbox throughput settings (1 relay + 1 worker)" "$DRAIN_RATE"
  DRAIN_ROWS_DONE=1
  DRAIN_FOOT="Preload (bulk SQL, not timed): $PRELOAD s. Peak RSS during the drain: relay $RELAY_RSS MiB (goal ≤ 64), worker $WORKER_RSS MiB (goal ≤ 128)."
  if [ -n "$STATEMENTS" ]; then
    DRAIN_FOOT+=$'\n\nPostgres statements during the drain (pg_stat_statements), by execution time: µs per job, calls, rows per call,
WAL bytes per job.\n\n| µs / job | calls | rows / call | WAL B / job | statement |\n|---|---|---|---|---|'
    while IFS='|' read -r us calls rows wal q; do
      DRAIN_FOOT+=$'\n'"| $us | $calls | $rows | $wal | \`${q//|/\\|}\` |"
    done <<<"$STATEMENTS"
  fi
  sleep 1 # backends report their table statistics within a second of going idle
  BLOAT=$(sql "SELECT relname, n_live_tup, n_dead_tup, round(n_tup_upd::numeric / $DRAIN_JOBS, 2), round(n_tup_hot_upd::numeric / $DRAIN_JOBS, 2),
                      round(n_tup_del::numeric / $DRAIN_JOBS, 2), vacuum_count, pg_size_pretty(pg_total_relation_size(relid))
                 FROM pg_stat_user_tables WHERE relname IN ('jobs', 'outbox') ORDER BY relname")
  # The relay's claim with 1M delivered rows waiting for retention (and 500 due ones): the partial index should keep it
  # independent of the history's size.
  say "claim query with 1M published rows awaiting retention"
  sql "INSERT INTO outbox (aggregate_id, topic, key, payload, published_at, attempts)
       SELECT gen_random_uuid(), 't', 'k', '{}'::jsonb, now(), 1 FROM generate_series(1, 1000000)" >/dev/null
  sql "INSERT INTO outbox (aggregate_id, topic, key, payload) SELECT gen_random_uuid(), 't', 'k', '{}'::jsonb FROM generate_series(1, 500)" >/dev/null
  sql "VACUUM ANALYZE outbox" >/dev/null
  CLAIM_MS=$(for _ in 1 2 3 4 5; do
    psql "$DB_URL" -tA -c "EXPLAIN (ANALYZE, FORMAT JSON) SELECT id, aggregate_id, topic, key, payload, headers FROM outbox
      WHERE published_at IS NULL AND available_at <= now() ORDER BY id LIMIT 500 FOR UPDATE SKIP LOCKED" |
      python3 -c "import json,sys; print(json.load(sys.stdin)[0]['Execution Time'])"
  done | sort -n | sed -n 3p)
fi

if want peers; then
  if [ -z "${DRAIN_ROWS_DONE:-}" ]; then
    row "## 4. Drain ($PEER_JOBS preloaded noop jobs; only the drain is timed)"
    row ""
    row "| system | jobs | time | jobs/s | cores used: relay / worker / broker / Postgres+rest / machine |"
    row "|---|---|---|---|---|"
  fi
  for peer in graphile-worker celery; do
    say "drain: $PEER_JOBS jobs through $peer"
    res=$("$ROOT/bench/peers/$peer/run.sh" "$PEER_JOBS") || res=""
    if [ -z "$res" ]; then row "| $peer | $PEER_JOBS | failed (see bench/peers/$peer/.log) | | |"; continue; fi
    secs=$(echo "$res" | json "['seconds']"); prate=$(echo "$res" | json "['per_second']")
    PEER_RATE[$peer]=$prate
    row "| $(echo "$res" | json "['system']") | $PEER_JOBS | $secs s | $prate | machine: $(echo "$res" | json "['machine_cores']") |"
    datum drain "$(echo "$res" | json "['system']" | cut -d' ' -f1)" "$prate"
  done
  row ""
  if [ -n "${ACKBOX_DRAIN_RATE:-}" ]; then
    for peer in graphile-worker celery; do
      goal=$([ "$peer" = celery ] && echo 5 || echo 4)
      [ -n "${PEER_RATE[$peer]:-}" ] && row "- Ackbox ÷ $peer: **$(python3 -c "print(f'{$ACKBOX_DRAIN_RATE/${PEER_RATE[$peer]}:.2f}')")** with the throughput settings, $(python3 -c "print(f'{$ACKBOX_DEFAULT_RATE/${PEER_RATE[$peer]}:.2f}')") with the defaults (goal ≥ $goal)"
    done
    row ""
  fi
fi
if [ -n "${DRAIN_FOOT:-}" ]; then
  row "$DRAIN_FOOT"
  row ""
  row "## 7. Bloat after the Ackbox drain"
  row ""
  row "Updates and deletes per job over the preload and the drain (HOT: updates that wrote no index entry); vacuums: how"
  row "often the table was vacuumed by hand: the bench's own VACUUM before the drain, plus the relay's during it (Postgres's autovacuum here: $(psql "$PG_ADMIN" -tAc 'show autovacuum'))."
  row ""
  row "| table | live | dead tuples | updates per job | of them HOT | deletes per job | vacuums | total size |"
  row "|---|---|---|---|---|---|---|---|"
  while IFS='|' read -r name live dead upd hot del vac size; do row "| $name | $live | $dead | $upd | $hot | $del | $vac | $size |"; done <<<"$BLOAT"
  row ""
  row "The relay's claim (500 due rows, \`FOR UPDATE SKIP LOCKED\`) with 1,000,000 published rows awaiting retention: **$CLAIM_MS ms** (median of 5, \`EXPLAIN ANALYZE\`)."
  row ""
fi

if want scaleout; then
  # Up to 4 workers share a lane here, so its topics need at least 4 partitions: a topic of their own, with
  # SCALE_PARTITIONS (the other parts run one worker on one partition per lane, bench/lib.sh).
  outer_topic=$TOPIC outer_partitions=$ACKBOX_TOPIC_PARTITIONS
  TOPIC="$TOPIC.scaleout" ACKBOX_TOPIC_PARTITIONS=$SCALE_PARTITIONS
  row "## 5. Scale-out (Ackbox drain of $SCALE_JOBS jobs, $ACKBOX_TOPIC_PARTITIONS partitions per lane)"
  row ""
  row "| relays | workers | time | jobs/s | cores used: relay / worker / broker / Postgres+rest / machine |"
  row "|---|---|---|---|---|"
  for shape in "1 1" "1 2" "1 4" "2 2"; do
    set -- $shape
    say "scale-out: $1 relay(s), $2 worker(s), $SCALE_JOBS jobs"
    ackbox_drain "$SCALE_JOBS" "$2" "$1"
    row "| $1 | $2 | $DRAIN_SECS s | $DRAIN_RATE${DRAIN_NOTE:+ ($DRAIN_NOTE)} | $DRAIN_CPU |"
    datum drain "Ackbox scale-out: $1 relay + $2 worker" "$DRAIN_RATE"
  done
  row ""
  TOPIC=$outer_topic ACKBOX_TOPIC_PARTITIONS=$outer_partitions
fi

# Sustained capacity (#14): the highest open-loop rate the whole pipeline keeps for a step of SUSTAINED_STEP_SECS
# (default 300) with commit->succeeded p99 <= 100 ms over the step, no growing backlog (the last minute's p50 at
# most twice the first's: a pipeline that falls behind sees its latency climb minute by minute), every POST
# accepted, and every job done within 10 s of the step's end. Each minute's p99 and the slowest job's stages are
# reported beside it, so a short stall (one minute over the bound) is told apart from falling behind.
# Rates double from SUSTAINED_START (default 500) until one fails, then SUSTAINED_BISECT (default 2) halvings of
# the gap, rounded to 50 jobs/s. Outbox retention runs (120 s), and the tables are emptied between steps.
# sustained_step RATE: runs one step; sets STEP_OK (0/1) and STEP_ROW (a report row).
sustained_step() {
  local rate=$1 secs=${SUSTAINED_STEP_SECS:-300} t0 ol accepted sent refused failed done_n stats worst slowest first last
  sql "TRUNCATE jobs, outbox" >/dev/null
  t0=$(date +%s.%N)
  ol=$(ACKBOX_API_KEY="$KEY" "$BIN/ackbox-bench" openloop --url "http://127.0.0.1:$API_PORT" --rate "$rate" --seconds "$secs")
  accepted=$(echo "$ol" | json "['accepted']"); sent=$(echo "$ol" | json "['sent']")
  refused=$(echo "$ol" | json "['refused_503']"); failed=$(echo "$ol" | json "['failed']")
  for _ in $(seq 1 100); do
    done_n=$(sql "SELECT count(*) FROM jobs WHERE status = 'succeeded'")
    [ "$done_n" -ge "$accepted" ] && break
    sleep 0.1
  done
  stats=$(sql "
    WITH e AS (SELECT floor(extract(epoch FROM created_at - to_timestamp($t0)) / 60) AS minute,
                      extract(epoch FROM finished_at - created_at) * 1000 AS ms
                 FROM jobs WHERE status = 'succeeded')
    SELECT round((SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) FROM e)::numeric, 1) || '|' ||
           round((SELECT percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) FROM e)::numeric, 1) || '|' ||
           (SELECT round(max(p)::numeric, 1) FROM (SELECT percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) AS p
                                                    FROM e GROUP BY minute) m) || '|' ||
           (SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1) FROM e WHERE minute = 0) || '|' ||
           (SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1) FROM e
             WHERE minute = (SELECT max(minute) FROM e WHERE minute < $secs / 60))")
  IFS='|' read -r p50 p99 worst first last <<<"$stats"
  # Where the slowest job of the step spent its time: a stall (broker, vacuum, checkpoint) shows in one stage.
  slowest=$(sql "
    SELECT round(extract(epoch FROM j.finished_at - j.created_at) * 1000) || ' ms: commit→ack ' ||
           round(extract(epoch FROM o.published_at - j.created_at) * 1000) || ', ack→claim ' ||
           round(extract(epoch FROM j.started_at - o.published_at) * 1000) || ', claim→done ' ||
           round(extract(epoch FROM j.finished_at - j.started_at) * 1000) || ' ms, at +' ||
           round(extract(epoch FROM j.created_at - to_timestamp($t0))) || ' s'
      FROM jobs j JOIN outbox o ON o.aggregate_id = j.id WHERE j.status = 'succeeded'
     ORDER BY j.finished_at - j.created_at DESC LIMIT 1")
  STEP_OK=$(python3 -c "print(int($accepted == $sent and $refused == 0 and $failed == 0 and $done_n >= $accepted
                                   and ${p99:-1e9} <= 100 and ${last:-1e9} <= 2 * ${first:-0}))")
  STEP_ROW="| $rate | $sent / $accepted | $done_n | ${p50:-?} / ${p99:-?} ms | ${first:-?} → ${last:-?} ms | ${worst:-?} ms | ${slowest:-?} | $([ "$STEP_OK" = 1 ] && echo kept || echo **not kept**) |"
}

if want sustained; then
  say "sustained capacity: open-loop steps of ${SUSTAINED_STEP_SECS:-300} s"
  reset_db
  export ACKBOX_OUTBOX_RETENTION_SECS=120
  start relay; RELAY_PID=$LAST_PID
  start worker; WORKER_PID=$LAST_PID
  start api; API_PID=$LAST_PID; wait_api
  unset ACKBOX_OUTBOX_RETENTION_SECS
  sleep 3 # group join
  row "## 6. Sustained capacity (open loop, ${SUSTAINED_STEP_SECS:-300} s per step, noop)"
  row ""
  row "Kept: every POST accepted, commit→succeeded p99 ≤ 100 ms over the step, no growing backlog (the last minute's p50"
  row "at most twice the first minute's), every job done within 10 s of the step's end. Outbox retention runs (120 s)."
  row "The worst minute's p99 and the slowest job's stages tell a short stall from falling behind. Goal: ≥ 1,500 jobs/s,"
  row "the load generator on the same box."
  row ""
  row "| rate (jobs/s) | sent / accepted | succeeded | commit→succeeded p50 / p99 | p50 first → last minute | worst minute's p99 | slowest job | |"
  row "|---|---|---|---|---|---|---|---|"
  rate=${SUSTAINED_START:-500}; best=0; worst_fail=0; bisect=${SUSTAINED_BISECT:-2}
  while :; do
    say "sustained: $rate jobs/s"
    sustained_step "$rate"; row "$STEP_ROW"
    if [ "$STEP_OK" = 1 ]; then best=$rate; else worst_fail=$rate; fi
    [ "$worst_fail" != 0 ] || { [ "$rate" -ge 8000 ] && break; rate=$((rate * 2)); continue; }
    [ "$best" != 0 ] || { [ "$rate" -le 100 ] && break; rate=$((rate / 2)); continue; }
    [ "$bisect" -gt 0 ] || break
    bisect=$((bisect - 1))
    rate=$(( (best + worst_fail) / 2 / 50 * 50 ))
    { [ "$rate" -le "$best" ] || [ "$rate" -ge "$worst_fail" ]; } && break
  done
  SUSTAINED_RATE=$best
  row ""
  row "**Sustained: $best jobs/s** (the highest rate kept; the lowest not kept: $worst_fail jobs/s)."
  row ""
  stop "$API_PID"; stop "$WORKER_PID"; stop "$RELAY_PID"
fi

if [ -n "${SUSTAINED_RATE:-}${ACCEPT_RATE:-}${ACKBOX_DRAIN_RATE:-}${BATCH_RATE:-}" ]; then
  row "## Summary: the rates of one run"
  row ""
  row "| closed-loop accept (POST/s, ${ACCEPT_CONNS:-?} connections) | batch submit (jobs/s) | drain of $DRAIN_JOBS preloaded jobs (jobs/s) | sustained (jobs/s, p99 ≤ 100 ms) |"
  row "|---|---|---|---|"
  row "| ${ACCEPT_RATE:-not run} | ${BATCH_RATE:-not run} | ${ACKBOX_DRAIN_RATE:-not run}${ACKBOX_DEFAULT_RATE:+ (throughput settings; $ACKBOX_DEFAULT_RATE with the defaults)} | ${SUSTAINED_RATE:-not run} |"
  row ""
fi

if want profile; then
  # perf samples each Ackbox process during a drain; the top symbols go into the report.
  say "profile: perf record of relay and worker during a drain of $SCALE_JOBS jobs"
  reset_db
  DATABASE_URL="$DB_URL" "$BIN/ackbox-bench" preload --jobs "$SCALE_JOBS" --topic "$TOPIC" >/dev/null
  start relay; RELAY_PID=$LAST_PID
  start worker; WORKER_PID=$LAST_PID
  perf record -F 499 -g -o "$WORK/relay.perf" -p "$RELAY_PID" -- sleep 20 >/dev/null 2>&1 &
  perf record -F 499 -g -o "$WORK/worker.perf" -p "$WORKER_PID" -- sleep 20 >/dev/null 2>&1 &
  [ "$BROKER_PID" != 0 ] && perf record -F 499 -g -o "$WORK/broker.perf" -p "$BROKER_PID" -- sleep 20 >/dev/null 2>&1 &
  wait_jobs=$(jobs -p | tail -3); for j in $wait_jobs; do wait "$j" 2>/dev/null || true; done
  row "## Profile (perf, 20 s of a drain; top self time)"
  row ""
  for what in relay worker broker; do
    [ -f "$WORK/$what.perf" ] || continue
    row "### $what"
    row '```'
    { perf report -i "$WORK/$what.perf" -g none --no-children --stdio --sort dso,symbol 2>/dev/null |
      grep -v '^#' | grep '%' | head -12 | sed 's/ *$//' >>"$REPORT"; } || true
    row '```'
  done
  stop "$WORKER_PID"; stop "$RELAY_PID"
fi

# The hand-written analysis lives in bench/findings.md, each section naming the run it describes; the report only
# points to it, so no analysis ever sits under another run's numbers.
row "## Analysis"
row ""
row "Written by hand in [bench/findings.md](../findings.md), each section naming the run (date, commit) it describes."
row "This report is the run of $(date -u +%Y-%m-%dT%H:%MZ) at commit $(git -C "$ROOT" rev-parse --short HEAD); compare"
row "its numbers with a section only when they name the same run."
cp "$REPORT" "$OUT/latest.md"
# make soak derives its rates from the sustained capacity on record: a run that measured it is that record.
if [ -n "${SUSTAINED_RATE:-}" ]; then cp "$REPORT" "$OUT/sustained.md"; say "sustained capacity on record: bench/results/sustained.md"; fi
if [ -s "$DATA" ]; then "$VENV/bin/python" "$ROOT/bench/plot.py" "$DATA" "$OUT/latest.png" && say "plot: bench/results/latest.png"; fi
say "report: bench/results/latest.md"
cat "$OUT/latest.md"
