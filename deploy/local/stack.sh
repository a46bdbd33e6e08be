#!/usr/bin/env bash
# Local stack for development and tests: Postgres (if needed), the nisshi Kafka-protocol broker, migrations, and the
# api, relay and worker processes. Everything it starts is recorded by PID under .ackbox/run so `down` stops exactly
# that and nothing else. Every step is idempotent: running `up` again starts only what is not running.
#
#   deploy/local/stack.sh up      # the whole stack + a demo job (make up)
#   deploy/local/stack.sh deps    # Postgres + broker only
#   deploy/local/stack.sh prepare # Postgres + broker, with the workspace built beside the broker's install (make test)
#   deploy/local/stack.sh install-broker  # nisshi at NISSHI_VERSION, unless that is what `nisshi --version` says
#   deploy/local/stack.sh tools   # what the tests drive besides those: headless Chromium (make test)
#   deploy/local/stack.sh down    # stop what `up`/`deps` started (make down)
#   deploy/local/stack.sh status  # what is running
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE="$ROOT/.ackbox"
RUN="$STATE/run"
LOGS="$STATE/logs"
PROFILE="${ACKBOX_PROFILE:-debug}"
NISSHI_VERSION="0.8.1"
KAFKA_HOST="${ACKBOX_KAFKA_HOST:-127.0.0.1}"
KAFKA_PORT="${ACKBOX_KAFKA_PORT:-9092}"
PG_HOST="${ACKBOX_PG_HOST:-127.0.0.1}"
PG_PORT="${ACKBOX_PG_PORT:-5432}"
DB_NAME="${ACKBOX_DB_NAME:-ackbox}"
API_BIND="${ACKBOX_BIND:-127.0.0.1:8080}"
DATABASE_URL="${DATABASE_URL:-postgres://postgres@$PG_HOST:$PG_PORT/$DB_NAME}"
KAFKA_BROKERS="${KAFKA_BROKERS:-$KAFKA_HOST:$KAFKA_PORT}"
ACKBOX_URL="http://$API_BIND"

mkdir -p "$RUN" "$LOGS"
export PATH="$HOME/.cargo/bin:$PATH"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

wait_port() { # host port what seconds
  local deadline=$((SECONDS + $4))
  until port_open "$1" "$2"; do
    [ "$SECONDS" -lt "$deadline" ] || die "$3 did not open $1:$2 within $4 s (see $LOGS)"
    if [ -f "$RUN/$3.pid" ] && ! alive "$3"; then die "$3 exited (see $LOGS/$3.log)"; fi
    sleep 0.2
  done
}

alive() { # name (a zombie, killed but not yet reaped, is not alive)
  local pidfile="$RUN/$1.pid"
  [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null &&
    ! grep -q '^State:[[:space:]]*Z' "/proc/$(cat "$pidfile")/status" 2>/dev/null
}

start_bg() { # name command...
  local name=$1; shift
  if alive "$name"; then
    echo "    $name already running (pid $(cat "$RUN/$name.pid"))"
    return
  fi
  setsid "$@" >>"$LOGS/$name.log" 2>&1 < /dev/null &
  echo $! >"$RUN/$name.pid"
  echo "    started $name (pid $!, log $LOGS/$name.log)"
}

ensure_postgres() {
  if port_open "$PG_HOST" "$PG_PORT"; then return; fi
  if ! command -v pg_lsclusters >/dev/null; then
    say "installing PostgreSQL (Debian package)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  say "starting the local PostgreSQL cluster"
  local version
  version=$(ls /etc/postgresql | sort -n | tail -1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_port "$PG_HOST" "$PG_PORT" postgres 60
}

# The broker binary: nisshi (crates.io) at exactly NISSHI_VERSION. Another version (or tansu, its former name) is
# not used: it is reinstalled. nisshi 0.8.1 needs rustc >= 1.96; where the default toolchain is older, the nightly
# that ships with the machine image builds it. Only the sqlite engine is built (the one the stack uses). nisshi sets
# no [profile], so cargo's release defaults already apply (no LTO, 16 codegen units): overriding them through
# CARGO_PROFILE_RELEASE_* changes nothing, and a lower opt-level would slow the broker that every bench measures.
# What shortens a first run is overlap: build_beside_broker_install.
broker_installed() { nisshi --version 2>/dev/null | grep -qw "$NISSHI_VERSION"; }

install_broker() {
  broker_installed && return
  if command -v nisshi >/dev/null; then
    say "nisshi reports '$(nisshi --version 2>&1 | head -1)', not $NISSHI_VERSION: reinstalling"
  fi
  local toolchain=() minor
  minor=$(rustc --version | sed -E 's/^rustc 1\.([0-9]+).*/\1/')
  if [ "${minor:-0}" -lt 96 ]; then
    rustup toolchain list | grep -q '^nightly' ||
      die "nisshi $NISSHI_VERSION needs rustc >= 1.96; this machine has $(rustc --version) and no nightly toolchain"
    toolchain=(+nightly)
  fi
  say "installing nisshi $NISSHI_VERSION from crates.io with cargo ${toolchain[*]} (once per machine; ~16 min here)"
  local started=$SECONDS
  cargo "${toolchain[@]}" install nisshi --version "$NISSHI_VERSION" --locked --force \
      --no-default-features --features libsql
  broker_installed || die "nisshi $NISSHI_VERSION did not install (nisshi --version: $(nisshi --version 2>&1 | head -1))"
  echo "    nisshi $NISSHI_VERSION installed in $((SECONDS - started)) s"
}

ensure_broker() {
  install_broker
  if port_open "$KAFKA_HOST" "$KAFKA_PORT"; then
    alive broker || echo "    a broker already listens on $KAFKA_HOST:$KAFKA_PORT; using it"
    return
  fi
  say "starting nisshi $NISSHI_VERSION on $KAFKA_HOST:$KAFKA_PORT (durable sqlite storage under .ackbox/nisshi)"
  mkdir -p "$STATE/nisshi"
  # nisshi reads sqlite://PATH relative to its working directory, so start it from the repo root. An empty group's
  # first rebalance does not wait for more members (Kafka's group.initial.rebalance.delay.ms, 3 s by default, which
  # Apache Kafka's own config/server.properties sets to 0 for development and testing, as here): a worker started
  # against a backlog takes its partitions at once instead of 3 s later. deploy/ leaves Kafka's default.
  (cd "$ROOT" && start_bg broker nisshi broker \
    --listener-url "tcp://$KAFKA_HOST:$KAFKA_PORT" \
    --advertised-listener-url "tcp://$KAFKA_HOST:$KAFKA_PORT" \
    --group-initial-rebalance-delay 0s \
    --storage-engine "sqlite://.ackbox/nisshi/nisshi.db")
  wait_port "$KAFKA_HOST" "$KAFKA_PORT" broker 60
}

write_env() {
  # Keep the dev key across runs (ensure_key replaces it if the API no longer accepts it).
  : "${ACKBOX_API_KEY:=$(sed -n 's/^ACKBOX_API_KEY=//p' "$STATE/local.env" 2>/dev/null || true)}"
  : "${ACKBOX_ADMIN_KEY:=$(sed -n 's/^ACKBOX_ADMIN_KEY=//p' "$STATE/local.env" 2>/dev/null || true)}"
  cat >"$STATE/local.env" <<ENV
# Written by deploy/local/stack.sh; source it in scripts.
ACKBOX_URL=$ACKBOX_URL
DATABASE_URL=$DATABASE_URL
KAFKA_BROKERS=$KAFKA_BROKERS
ACKBOX_API_KEY=${ACKBOX_API_KEY:-}
ACKBOX_ADMIN_KEY=${ACKBOX_ADMIN_KEY:-}
ENV
}

# A tenant's key in .ackbox/local.env: reused while the API accepts it at `probe`, otherwise created.
ensure_key_for() { # variable probe-path tenant [--admin]
  local var=$1 probe=$2 tenant=$3 key
  key=$(sed -n "s/^$var=//p" "$STATE/local.env" 2>/dev/null || true)
  if [ -z "$key" ] || [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $key" \
        "$ACKBOX_URL$probe")" != 200 ]; then
    say "creating the $tenant tenant's key${4:+ (admin: it opens the dashboard)}"
    key=$(DATABASE_URL="$DATABASE_URL" "$ROOT/target/$PROFILE/ackbox" keys create --tenant "$tenant" ${4:-})
  fi
  printf -v "$var" '%s' "$key"
  write_env
}

ensure_key() { ensure_key_for ACKBOX_API_KEY "/v1/jobs?limit=1" dev; }
ensure_admin_key() { ensure_key_for ACKBOX_ADMIN_KEY /dashboard/api/summary ops --admin; }

# Tools the test suite drives: headless Chromium for the dashboard test (Debian's package), and the Azure SDK's
# azure-core (PyPI, pinned) whose own LRO poller the standard-pollers test drives, in .ackbox/venv.
AZURE_CORE_VERSION="1.41.0"
ensure_test_tools() {
  if [ ! -x /usr/bin/chromium ]; then
    say "installing chromium (Debian package) for the dashboard test"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
  local venv="$STATE/venv"
  if ! "$venv/bin/python" -c "import azure.core, sys; sys.exit(azure.core.__version__ != '$AZURE_CORE_VERSION')" 2>/dev/null; then
    say "installing azure-core $AZURE_CORE_VERSION from PyPI into .ackbox/venv for the standard-pollers test"
    [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install -q "azure-core==$AZURE_CORE_VERSION"
  fi
}

build() {
  say "building api, relay and worker ($PROFILE)"
  local flag=()
  [ "$PROFILE" = release ] && flag=(--release)
  # --workspace --bins, as `make test` builds, so both share one set of artifacts; --examples for the worker
  # example the end-to-end tests run as a second fleet (e2e/tests/e2e/fleets.rs).
  (cd "$ROOT" && cargo build "${flag[@]}" --workspace --bins --examples)
}

# The broker's install (a cargo build of its own, minutes on a new machine) and the workspace build overlap: the
# install runs in the background while the workspace builds, and both must succeed.
build_beside_broker_install() {
  if broker_installed; then build; return; fi
  install_broker >"$LOGS/broker-install.log" 2>&1 &
  local installer=$! started=$SECONDS built
  echo "    installing nisshi $NISSHI_VERSION in the background (log $LOGS/broker-install.log)"
  build
  built=$((SECONDS - started))
  say "waiting for the nisshi install to finish"
  wait "$installer" || { tail -20 "$LOGS/broker-install.log" >&2; die "installing nisshi failed (see $LOGS/broker-install.log)"; }
  tail -1 "$LOGS/broker-install.log"
  echo "    workspace build and broker install together: $((SECONDS - started)) s"
  # Kept for `make bench`, which reports the first-run cost of this machine.
  FIRST_RUN_INSTALLED=1
  printf 'date\t%s\nworkspace_build_s\t%s\nbroker_install_and_build_s\t%s\n' \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$built" "$((SECONDS - started))" >"$STATE/first-run.tsv"
}

create_db() {
  if ! psql "postgres://postgres@$PG_HOST:$PG_PORT/postgres" -tAc "SELECT 1 FROM pg_database WHERE datname='$DB_NAME'" | grep -q 1; then
    say "creating database $DB_NAME"
    psql "postgres://postgres@$PG_HOST:$PG_PORT/postgres" -qc "CREATE DATABASE $DB_NAME"
  fi
}

start_services() {
  local bin="$ROOT/target/$PROFILE"
  say "running migrations"
  DATABASE_URL="$DATABASE_URL" "$bin/ackbox-api" migrate
  say "starting services"
  # The relay runs with its defaults (idempotent producer, 5 requests in flight). The worker is a static group
  # member with a name of its own, so a worker restarted after a crash takes its partitions back at once.
  # One partition per priority lane: the stack runs one worker, and nisshi reads every partition of a fetch again on
  # each of its polling rounds, so each partition costs the broker CPU even when idle (README.md, "Locally, Kafka is
  # nisshi"). The relay's own default (6) is for brokers where a partition costs nothing idle; deploy/ sets its own.
  export DATABASE_URL KAFKA_BROKERS ACKBOX_BIND="$API_BIND" RUST_LOG="${RUST_LOG:-info}" \
    ACKBOX_WORKER_INSTANCE_ID="${ACKBOX_WORKER_INSTANCE_ID:-local-worker-1}" \
    ACKBOX_TOPIC_PARTITIONS="${ACKBOX_TOPIC_PARTITIONS:-1}"
  start_bg relay "$bin/ackbox-relay"
  start_bg worker "$bin/ackbox-worker"
  # Local development: completion callbacks may reach a receiver on this machine (127.0.0.1). Production keeps the
  # default, which refuses loopback, private and link-local targets.
  start_bg api env ACKBOX_CALLBACK_ALLOW_LOOPBACK="${ACKBOX_CALLBACK_ALLOW_LOOPBACK:-true}" "$bin/ackbox-api"
  deadline=$((SECONDS + 60))
  until curl -fsS "$ACKBOX_URL/readyz" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || die "api not ready within 60 s (see $LOGS/api.log)"
    alive api || die "api exited (see $LOGS/api.log)"
    sleep 0.2
  done
}

demo() {
  # Through the product's own client: `ackbox submit --wait` (the CLI settles for nothing less than `succeeded`).
  say "submitting a demo job: ackbox submit echo --payload '{\"hello\":\"ackbox\"}' --wait"
  local out deadline=$((SECONDS + 60))
  # The worker registers its kinds when it starts; until then the API refuses them with 422, and we ask again.
  until out=$(ACKBOX_URL="$ACKBOX_URL" ACKBOX_API_KEY="$ACKBOX_API_KEY" "$ROOT/target/$PROFILE/ackbox" \
      submit echo --payload '{"hello":"ackbox"}' --wait --timeout 60 2>"$LOGS/demo.err"); do
    grep -q "registered" "$LOGS/demo.err" || { cat "$LOGS/demo.err" >&2; die "the demo job did not succeed"; }
    [ "$SECONDS" -lt "$deadline" ] || die "the API did not accept the demo job within 60 s (see $LOGS)"
    sleep 0.2
  done
  printf '%s\n' "$out" | sed 's/^/    /'
}

stop() { # name
  local pidfile="$RUN/$1.pid"
  [ -f "$pidfile" ] || return 0
  local pid
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    echo "    stopped $1 (pid $pid)"
  fi
  rm -f "$pidfile"
}

case "${1:-}" in
  up)
    ensure_postgres
    build_beside_broker_install
    ensure_broker
    create_db
    write_env
    start_services
    ensure_key
    ensure_admin_key
    demo
    [ -n "${FIRST_RUN_INSTALLED:-}" ] && printf 'make_up_s\t%s\n' "$SECONDS" >>"$STATE/first-run.tsv"
    say "stack is up in $SECONDS s: $ACKBOX_URL (env in .ackbox/local.env, logs in .ackbox/logs, stop with make down)"
    say "dashboard: $ACKBOX_URL/dashboard#key=$ACKBOX_ADMIN_KEY"
    ;;
  deps)
    ensure_postgres
    ensure_broker
    ;;
  install-broker)
    install_broker
    ;;
  prepare)
    ensure_postgres
    build_beside_broker_install
    ensure_broker
    ;;
  tools)
    ensure_test_tools
    ;;
  down)
    for c in api worker relay broker; do stop "$c"; done
    ;;
  status)
    for c in broker relay worker api; do
      if alive "$c"; then echo "$c: running (pid $(cat "$RUN/$c.pid"))"; else echo "$c: stopped"; fi
    done
    ;;
  *)
    echo "usage: $0 up|deps|prepare|install-broker|tools|down|status" >&2
    exit 2
    ;;
esac
