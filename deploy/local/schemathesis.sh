#!/usr/bin/env bash
# Property-based API testing: schemathesis (from PyPI) generates valid and invalid requests from /openapi.json and
# checks every response: no 5xx, every status documented, every body matching its schema, invalid input refused.
# Runs against a real ackbox-api on a database of its own, which it drops afterwards. Part of `make test`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STATE="$ROOT/.ackbox"
VENV="$STATE/venv"
SCHEMATHESIS_VERSION="4.32.5"
PG_ADMIN="${ACKBOX_TEST_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
DB="ackbox_st_$$"
DB_URL="${PG_ADMIN%/*}/$DB"
BIN="$ROOT/target/debug"
EXAMPLES="${SCHEMATHESIS_EXAMPLES:-100}"
SEED="${SCHEMATHESIS_SEED:-20261125}"
mkdir -p "$STATE/logs"

if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  echo "==> installing schemathesis $SCHEMATHESIS_VERSION from PyPI into .ackbox/venv"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
fi

api_pid=""
cleanup() {
  [ -n "$api_pid" ] && kill "$api_pid" 2>/dev/null && wait "$api_pid" 2>/dev/null || true
  psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT

psql "$PG_ADMIN" -qc "CREATE DATABASE $DB"
DATABASE_URL="$DB_URL" "$BIN/ackbox-api" migrate 2>/dev/null
# The kinds the built-in worker registers, so valid submissions are accepted (no worker runs here).
DATABASE_URL="$DB_URL" "$BIN/ackbox" kinds register noop echo sleep fail effect 2>/dev/null
KEY=$(DATABASE_URL="$DB_URL" "$BIN/ackbox" keys create --tenant schemathesis 2>/dev/null)

out="$STATE/logs/schemathesis-api.out"
DATABASE_URL="$DB_URL" ACKBOX_BIND=127.0.0.1:0 ACKBOX_AUTO_MIGRATE=false RUST_LOG=warn \
  "$BIN/ackbox-api" >"$out" 2>"$STATE/logs/schemathesis-api.log" &
api_pid=$!
for _ in $(seq 1 100); do
  grep -q "listening on" "$out" 2>/dev/null && break
  kill -0 "$api_pid" 2>/dev/null || { echo "ackbox-api exited; see $STATE/logs/schemathesis-api.log" >&2; exit 1; }
  sleep 0.1
done
URL=$(sed -n 's/^listening on //p' "$out")

echo "==> schemathesis against $URL/openapi.json ($EXAMPLES examples per operation, seed $SEED)"
# All checks but positive_data_acceptance: two rules are stateful and cannot be written in a schema, and their
# documented 422s would count as "valid data rejected": reusing an Idempotency-Key with another body (IETF draft),
# and a kind whose worker has not registered (the served schema lists the registered kinds, but the stateful phase
# reuses keys). Every other check, negative data included, runs.
"$VENV/bin/schemathesis" run "$URL/openapi.json" \
  --checks all --exclude-checks positive_data_acceptance \
  --mode all -n "$EXAMPLES" --seed "$SEED" \
  -H "Authorization: Bearer $KEY" \
  --request-timeout 10
