#!/usr/bin/env bash
# The README's promise for `make up`: after a `kill -9` of any one component (api, relay, worker or the broker),
# running `make up` again starts just that one, and its demo job completes. Checks each component in turn against
# the local stack (part of `make chaos`, which runs alone: it kills the shared broker). Prints how long each
# `make up` took and exits non-zero at the first one that fails.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STACK="$ROOT/deploy/local/stack.sh"
RUN="$ROOT/.ackbox/run"
LOGS="$ROOT/.ackbox/logs"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

say "restart check: bringing the stack up"
"$STACK" up >"$LOGS/restart-check.log" 2>&1 || { tail -20 "$LOGS/restart-check.log"; exit 1; }

for component in worker relay api broker; do
  pid=$(cat "$RUN/$component.pid")
  say "kill -9 $component (pid $pid), then make up"
  kill -KILL "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  started=$(date +%s.%N)
  if ! "$STACK" up >>"$LOGS/restart-check.log" 2>&1; then
    tail -20 "$LOGS/restart-check.log"
    echo "FAIL: make up after kill -9 of $component (log $LOGS/restart-check.log)" >&2
    exit 1
  fi
  [ "$(cat "$RUN/$component.pid")" != "$pid" ] || { echo "FAIL: $component was not restarted" >&2; exit 1; }
  echo "    ok: $component restarted and the demo job succeeded; make up took $(python3 -c "print(f'{$(date +%s.%N) - $started:.1f}')") s"
done
say "restart check passed for worker, relay, api and broker"
