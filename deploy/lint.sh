#!/usr/bin/env bash
# make lint-deploy: validates deploy/ offline (Docker and Kubernetes cannot run on our machines).
#   1. docker-compose.yml against the compose-spec schema (check-jsonschema, PyPI, schema bundled);
#   2. deploy/k8s/*.yaml against Kubernetes 1.30 schemas, strictly (kubernetes-validate, PyPI, schemas bundled);
#   3. each service gets exactly the env vars its binary reads, in both targets (lint_env.py).
# Each check is first run on a deliberately broken copy and must fail there: a validator that passes everything
# would otherwise go unnoticed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.ackbox/deploy-venv"
K8S_VERSION=1.30.0
[ -x "$VENV/bin/kubernetes-validate" ] && [ -x "$VENV/bin/check-jsonschema" ] ||
  { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q -r "$ROOT/deploy/requirements.txt"; }
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT

compose() { "$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec "$@"; }
k8s() { "$VENV/bin/kubernetes-validate" --strict --quiet -k "$K8S_VERSION" "$@"; }
k8s_files=()
for f in "$ROOT"/deploy/k8s/*.yaml; do [ "$(basename "$f")" = kustomization.yaml ] || k8s_files+=("$f"); done

say "negative controls: broken copies must fail"
sed 's/^    image: postgres:16$/    image: postgres:16\n    restart_policy: always/' "$ROOT/deploy/compose/docker-compose.yml" >"$TMP/bad-compose.yml"
! compose "$TMP/bad-compose.yml" >/dev/null 2>&1 || { echo "check-jsonschema accepted an unknown service key"; exit 1; }
sed 's/^  replicas: 2$/  replicas: two/' "$ROOT/deploy/k8s/api.yaml" >"$TMP/bad-api.yaml"
! k8s "$TMP/bad-api.yaml" >/dev/null 2>&1 || { echo "kubernetes-validate accepted replicas: two"; exit 1; }
mkdir -p "$TMP/root/deploy"
for d in api relay worker shared; do ln -s "$ROOT/$d" "$TMP/root/$d"; done
cp -r "$ROOT/deploy/compose" "$ROOT/deploy/k8s" "$TMP/root/deploy/"
sed -i '/ACKBOX_RELAY_LINGER_MS/d' "$TMP/root/deploy/k8s/config.yaml"
! "$VENV/bin/python" "$ROOT/deploy/lint_env.py" "$TMP/root" >"$TMP/env.out" && grep -q ACKBOX_RELAY_LINGER_MS "$TMP/env.out" ||
  { echo "lint_env.py missed a variable removed from deploy/k8s"; exit 1; }
cp "$ROOT/deploy/k8s/config.yaml" "$TMP/root/deploy/k8s/config.yaml"
sed -i 's/^  ACKBOX_WORKER_OPS_BIND: /  ACKBOX_TOPIC_PARTITIONS: "24"\n  ACKBOX_WORKER_OPS_BIND: /' "$TMP/root/deploy/k8s/config.yaml"
! "$VENV/bin/python" "$ROOT/deploy/lint_env.py" "$TMP/root" >"$TMP/env.out" && grep -q "ACKBOX_TOPIC_PARTITIONS is set for worker" "$TMP/env.out" ||
  { echo "lint_env.py missed a relay setting on the worker"; exit 1; }

say "compose: deploy/compose/docker-compose.yml"
compose "$ROOT/deploy/compose/docker-compose.yml"
say "kubernetes $K8S_VERSION (strict): ${k8s_files[*]##*/}"
k8s "${k8s_files[@]}"
echo "ok -- ${#k8s_files[@]} files valid"
say "environment variables: binaries vs deploy files"
"$VENV/bin/python" "$ROOT/deploy/lint_env.py" "$ROOT"
