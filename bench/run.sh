#!/usr/bin/env bash
# make bench: Ackbox measured next to its physical ceilings on this machine. Reports numbers; asserts nothing.
# PART=all|ceilings|accept|latency|drain (default all). Writes bench/results/latest.md.
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
mkdir -p "$OUT" "$WORK"
REPORT="$WORK/report.md"
: >"$REPORT"
pids=()

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
row() { echo "$*" >>"$REPORT"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(d$1)"; }
sql() { psql "$DB_URL" -tAc "$1"; }

cleanup() { for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

"$ROOT/deploy/local/stack.sh" deps >&2
say "building release binaries"
(cd "$ROOT" && cargo build --release -q -p ackbox-api -p ackbox-relay -p ackbox-worker -p ackbox-cli -p ackbox-bench)

reset_db() {
  psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -qc "CREATE DATABASE $DB"
  DATABASE_URL="$DB_URL" "$BIN/ackbox-api" migrate 2>/dev/null
  sql "INSERT INTO job_kinds (kind) VALUES ('noop')" >/dev/null
  KEY=$(DATABASE_URL="$DB_URL" "$BIN/ackbox" keys create --tenant bench 2>/dev/null)
}

common_env() {
  export DATABASE_URL="$DB_URL" KAFKA_BROKERS="$BROKERS" ACKBOX_TOPIC="$TOPIC" ACKBOX_AUTO_MIGRATE=false RUST_LOG=warn \
    ACKBOX_BIND="127.0.0.1:$API_PORT" ACKBOX_RELAY_OPS_BIND=127.0.0.1:0 ACKBOX_WORKER_OPS_BIND=127.0.0.1:0 \
    ACKBOX_TOPIC_PARTITIONS="${ACKBOX_TOPIC_PARTITIONS:-6}" ACKBOX_RATE_LIMIT_PER_SEC=1000000 ACKBOX_RATE_LIMIT_BURST=1000000 \
    ACKBOX_WORKER_GROUP="bench-$TOPIC" ACKBOX_RELAY_MAX_IN_FLIGHT="${ACKBOX_RELAY_MAX_IN_FLIGHT:-1}"
}

start() { # name -> sets LAST_PID
  common_env
  "$BIN/ackbox-$1" >"$WORK/$1.out" 2>"$WORK/$1.log" &
  LAST_PID=$!
  pids+=("$LAST_PID")
}

wait_api() {
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$API_PORT/readyz" >/dev/null 2>&1 && return; sleep 0.1; done
  echo "api did not start; see $WORK/api.log" >&2; exit 1
}

peak_rss_mib() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status" 2>/dev/null || echo "?"; }

stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

row "# Ackbox benchmark"
row ""
row "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ); commit: $(git -C "$ROOT" rev-parse --short HEAD)"
row "- machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; $(uname -sr)"
row "- Postgres: $(psql "$PG_ADMIN" -tAc 'show server_version'); synchronous_commit=$(psql "$PG_ADMIN" -tAc 'show synchronous_commit'); shared_buffers=$(psql "$PG_ADMIN" -tAc 'show shared_buffers'); max_connections=$(psql "$PG_ADMIN" -tAc 'show max_connections')"
row "- broker: tansu 0.6.0, sqlite storage (durable), on loopback"
row "- command: \`make bench PART=$PART\` (release build; each step ${DURATION}s)"
row ""

declare -A PGTPS
if [[ "$PART" == all || "$PART" == ceilings || "$PART" == accept ]]; then
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
  # A topic of its own: on tansu 0.6.0, a second idempotent producer on a topic another one just filled can trip the
  # broker's idempotence check (relay/README.md), which would wreck the later parts.
  prod=$("$BIN/ackbox-bench" produce --brokers "$BROKERS" --topic "$TOPIC.ceiling" --messages 50000 --batch 500)
  row "| rdkafka producer, relay settings (idempotent, acks=all, linger 1 ms, 500 in flight) | 1 | $(echo "$prod" | json "['per_second']") msg/s |"
  row ""
fi

if [[ "$PART" == all || "$PART" == accept ]]; then
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
  row "| connections | POST/s | p50 | p99 | pgbench tx/s (same clients) | ratio (goal ≥ 0.6) |"
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
  done
  row ""
  row "api peak RSS during the accept test: $(peak_rss_mib "$API_PID") MiB (goal ≤ 64)"
  row ""
  stop "$API_PID"
fi

if [[ "$PART" == all || "$PART" == latency ]]; then
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
  for rate in 50 200 1000; do
    sql "TRUNCATE jobs, outbox" >/dev/null
    ol=$(ACKBOX_API_KEY="$KEY" "$BIN/ackbox-bench" openloop --url "http://127.0.0.1:$API_PORT" --rate "$rate" --seconds "$DURATION")
    total=$(echo "$ol" | json "['accepted']")
    for _ in $(seq 1 600); do
      done_n=$(sql "SELECT count(*) FROM jobs WHERE status = 'succeeded'")
      [ "$done_n" -ge "$total" ] && break
      sleep 0.1
    done
    [ "$done_n" -ge "$total" ] || row "| $rate/s | $total | (only $done_n succeeded within 60 s; figures below cover those) |||||| "
    stats=$(sql "
      SELECT round((percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM j.finished_at - j.created_at)) * 1000)::numeric, 1) || ' ms|' ||
             round((percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM j.finished_at - j.created_at)) * 1000)::numeric, 1) || ' ms|' ||
             round((percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM o.published_at - j.created_at)) * 1000)::numeric, 1) || ' ms|' ||
             round((percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM j.started_at - o.published_at)) * 1000)::numeric, 1) || ' ms|' ||
             round((percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM j.finished_at - j.started_at)) * 1000)::numeric, 1) || ' ms'
        FROM jobs j JOIN outbox o ON o.aggregate_id = j.id WHERE j.status = 'succeeded'")
    row "| $rate/s | $total | $(echo "$ol" | json "['post_p50_ms']") / $(echo "$ol" | json "['post_p99_ms']") ms | ${stats//|/ | } |"
  done
  row ""
  row "Goal at 200/s: p50 ≤ 10 ms and p99 ≤ 50 ms (commit→succeeded)."
  row ""
  stop "$API_PID"; stop "$WORKER_PID"; stop "$RELAY_PID"
fi

if [[ "$PART" == all || "$PART" == drain ]]; then
  say "drain: $DRAIN_JOBS preloaded noop jobs"
  reset_db
  pre=$(DATABASE_URL="$DB_URL" "$BIN/ackbox-bench" preload --jobs "$DRAIN_JOBS" --topic "$TOPIC")
  sql "VACUUM ANALYZE jobs, outbox" >/dev/null
  t0=$(date +%s.%N)
  start relay; RELAY_PID=$LAST_PID
  start worker; WORKER_PID=$LAST_PID
  drain_deadline=$((SECONDS + ${DRAIN_TIMEOUT:-600}))
  while :; do
    n=$(sql "SELECT count(*) FROM jobs WHERE status = 'succeeded'")
    [ "$n" -ge "$DRAIN_JOBS" ] && break
    if [ "$SECONDS" -ge "$drain_deadline" ]; then
      row "**Drain did not finish within ${DRAIN_TIMEOUT:-600} s: $n of $DRAIN_JOBS succeeded** (see $WORK/*.log and the broker log)."
      break
    fi
    sleep 0.2
  done
  t1=$(date +%s.%N)
  secs=$(python3 -c "print(f'{$t1-$t0:.1f}')")
  rate=$(python3 -c "print(int($DRAIN_JOBS/($t1-$t0)))")
  row "## 4. Drain ($DRAIN_JOBS preloaded noop jobs, 1 relay + 1 worker, topic with 6 partitions)"
  row ""
  row "| system | time | jobs/s |"
  row "|---|---|---|"
  row "| Ackbox | $secs s | $rate |"
  row ""
  row "Preload (bulk SQL, not timed): $(echo "$pre" | json "['seconds']") s. Peak RSS during the drain: relay $(peak_rss_mib "$RELAY_PID") MiB (goal ≤ 64), worker $(peak_rss_mib "$WORKER_PID") MiB (goal ≤ 128)."
  row ""
  row "## 7. Bloat after the drain"
  row ""
  row "| table | live | dead tuples | total size |"
  row "|---|---|---|---|"
  sql "SELECT relname, n_live_tup, n_dead_tup, pg_size_pretty(pg_total_relation_size(relid)) FROM pg_stat_user_tables WHERE relname IN ('jobs', 'outbox') ORDER BY relname" |
    while IFS='|' read -r name live dead size; do row "| $name | $live | $dead | $size |"; done
  row ""
  stop "$WORKER_PID"; stop "$RELAY_PID"
fi

cp "$REPORT" "$OUT/latest.md"
say "report: bench/results/latest.md"
cat "$OUT/latest.md"
