#!/usr/bin/env bash
# `make test`: the broker install keeps a nisshi of the pinned version and reinstalls any other, never using it.
# Runs `stack.sh install-broker` against stand-ins for `nisshi`, `cargo`, `rustc` and `rustup` on PATH, so nothing is
# built or downloaded; the stand-in cargo records its arguments and "installs" by replacing the stand-in nisshi.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WANT=$(sed -n 's/^NISSHI_VERSION="\(.*\)"/\1/p' "$ROOT/deploy/local/stack.sh")
SHIMS=$(mktemp -d)
trap 'rm -rf "$SHIMS"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

fake_nisshi() { printf '#!/bin/sh\necho "nisshi %s"\n' "$1" >"$SHIMS/nisshi"; chmod +x "$SHIMS/nisshi"; }
cat >"$SHIMS/cargo" <<SH
#!/bin/sh
echo "\$@" >>"$SHIMS/cargo.calls"
printf '#!/bin/sh\necho "nisshi $WANT"\n' >"$SHIMS/nisshi"; chmod +x "$SHIMS/nisshi"
SH
printf '#!/bin/sh\necho "rustc 1.95.0 (shim)"\n' >"$SHIMS/rustc"
printf '#!/bin/sh\necho "nightly-x86_64-unknown-linux-gnu"\n' >"$SHIMS/rustup"
chmod +x "$SHIMS/cargo" "$SHIMS/rustc" "$SHIMS/rustup"
run() { HOME="$SHIMS" PATH="$SHIMS:/usr/bin:/bin" "$ROOT/deploy/local/stack.sh" install-broker; }

# The pinned version is kept: no install.
fake_nisshi "$WANT"
run >/dev/null
[ ! -e "$SHIMS/cargo.calls" ] || fail "reinstalled nisshi $WANT, which was already there"

# Another version (an 0.7.0 pre-release, say) is reinstalled at the pinned one, with the nightly where rustc < 1.96.
fake_nisshi "0.7.0-pre.3"
out=$(run 2>&1)
grep -q "not $WANT: reinstalling" <<<"$out" || fail "no reinstall message: $out"
grep -q -- "+nightly install nisshi --version $WANT --locked --force" "$SHIMS/cargo.calls" ||
  fail "unexpected install command: $(cat "$SHIMS/cargo.calls")"
[ "$("$SHIMS/nisshi" --version)" = "nisshi $WANT" ] || fail "nisshi was not replaced"
echo "install-broker: keeps nisshi $WANT, reinstalls 0.7.0-pre.3 with: cargo $(cat "$SHIMS/cargo.calls")"
echo "install-broker checks: 2 of 2 ok"
