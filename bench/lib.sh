# Helpers shared by bench/run.sh (make bench) and bench/soak.sh (make soak). Sourced after ROOT, BIN, WORK, PG_ADMIN,
# DB, DB_URL, BROKERS, TOPIC and API_PORT are set; `pids` collects what `start` starts.

reset_db() {
  psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -qc "CREATE DATABASE $DB"
  DATABASE_URL="$DB_URL" "$BIN/ackbox-api" migrate 2>/dev/null
  DATABASE_URL="$DB_URL" "$BIN/ackbox" kinds register noop 2>/dev/null
  KEY=$(DATABASE_URL="$DB_URL" "$BIN/ackbox" keys create --tenant bench 2>/dev/null)
}

# Partitions per priority lane of the topics the services create: one unless ACKBOX_TOPIC_PARTITIONS says otherwise.
# One worker consumes them here, as in the local stack (deploy/local/stack.sh), and on nisshi every partition of a
# fetch costs a storage read per polling round (bench/findings.md, session 14). Exported by common_env.
ACKBOX_TOPIC_PARTITIONS="${ACKBOX_TOPIC_PARTITIONS:-1}"

# The services' environment.
common_env() {
  export DATABASE_URL="$DB_URL" KAFKA_BROKERS="$BROKERS" ACKBOX_TOPIC="$TOPIC" ACKBOX_AUTO_MIGRATE=false RUST_LOG=${BENCH_RUST_LOG:-warn} \
    ACKBOX_BIND="127.0.0.1:$API_PORT" ACKBOX_RELAY_OPS_BIND=127.0.0.1:0 ACKBOX_WORKER_OPS_BIND=127.0.0.1:0 ACKBOX_API_OPS_BIND=127.0.0.1:0 \
    ACKBOX_TOPIC_PARTITIONS ACKBOX_RATE_LIMIT_PER_SEC=1000000 ACKBOX_RATE_LIMIT_BURST=1000000 \
    ACKBOX_WORKER_GROUP="bench-$TOPIC"
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

# CPU seconds a process has used so far (user + system), from /proc.
cpu_secs() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# Busy CPU seconds of the whole machine so far.
machine_busy() { awk -v hz="$(getconf CLK_TCK)" '/^cpu / {printf "%.2f", ($2 + $3 + $4 + $7 + $8) / hz}' /proc/stat; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(d$1)"; }
sql() { psql "$DB_URL" -tAc "$1"; }
# The broker to measure: the pid file's, or a broker another command (make test, make up) started.
find_broker() {
  BROKER_PID=$(cat "$ROOT/.ackbox/run/broker.pid" 2>/dev/null || echo 0)
  { [ "$BROKER_PID" != 0 ] && kill -0 "$BROKER_PID" 2>/dev/null; } || BROKER_PID=$(pgrep -xo nisshi || pgrep -xo tansu || echo 0)
  BROKER_NAME=$(ps -o comm= -p "$BROKER_PID" 2>/dev/null || echo "?")
  BROKER_VERSION=$("$BROKER_NAME" --version 2>/dev/null | head -1 || echo "$BROKER_NAME")
}
