#!/usr/bin/env bash
# make lint-deploy: validates deploy/ offline (Docker and Kubernetes cannot run on our machines).
#   1. docker-compose.yml against the compose-spec schema (check-jsonschema, PyPI, schema bundled);
#   2. deploy/k8s/*.yaml against Kubernetes 1.30 schemas, strictly (kubernetes-validate, PyPI, schemas bundled);
#   3. each service gets exactly the env vars its binary reads, in both targets (lint_env.py);
#   4. every pod passes the restricted Pod Security Standard (lint_pss.py);
#   5. the CRD manifests (monitoring/, keda/) agree with the rest (lint_k8s_extras.py), and the alert rules pass
#      `promtool check rules` and their unit tests (`promtool test rules monitoring/alerts.test.yaml`). promtool
#      comes from Debian's prometheus package, unpacked under .ackbox/tools (no service is installed or started).
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

PROMTOOL="$ROOT/.ackbox/tools/promtool"
if ! [ -x "$PROMTOOL" ]; then
  if command -v promtool >/dev/null; then PROMTOOL=$(command -v promtool); else
    say "fetching promtool from Debian's prometheus package (once per machine)"
    mkdir -p "$ROOT/.ackbox/tools" "$TMP/deb"
    (cd "$TMP/deb" && { apt-get download prometheus >/dev/null 2>&1 || { apt-get update -qq && apt-get download prometheus; }; } &&
      dpkg-deb -x prometheus_*.deb x && cp x/usr/bin/promtool "$PROMTOOL")
  fi
fi
"$PROMTOOL" --version >/dev/null

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

cp -r "$ROOT/deploy/k8s" "$TMP/pss"
sed -i 's/capabilities: {drop: \[ALL\]}/capabilities: {drop: [NET_RAW]}/' "$TMP/pss/worker.yaml"
! "$VENV/bin/python" "$ROOT/deploy/lint_pss.py" "$TMP/pss" >"$TMP/pss.out" && grep -q "drop must include ALL" "$TMP/pss.out" ||
  { echo "lint_pss.py accepted a container that keeps its capabilities"; exit 1; }
sed -i 's/  maxReplicaCount: 24/  maxReplicaCount: 30/' "$TMP/pss/keda/scaled-object.yaml"
! "$VENV/bin/python" "$ROOT/deploy/lint_k8s_extras.py" "$TMP/pss" "$TMP/bad-rules.yaml" >/dev/null ||
  { echo "lint_k8s_extras.py missed a ScaledObject scaling past the partitions"; exit 1; }
"$VENV/bin/python" "$ROOT/deploy/lint_k8s_extras.py" "$ROOT/deploy/k8s" "$TMP/bad-rules.yaml" >/dev/null
sed -i 's/> 60$/> 6000/' "$TMP/bad-rules.yaml"
cp "$ROOT/deploy/k8s/monitoring/alerts.test.yaml" "$TMP/bad-alerts.test.yaml"
sed -i 's/rules.generated.yaml/bad-rules.yaml/' "$TMP/bad-alerts.test.yaml"
! "$PROMTOOL" test rules "$TMP/bad-alerts.test.yaml" >/dev/null 2>&1 ||
  { echo "promtool test rules passed an alert whose threshold was changed"; exit 1; }

say "compose: deploy/compose/docker-compose.yml"
compose "$ROOT/deploy/compose/docker-compose.yml"
say "kubernetes $K8S_VERSION (strict): ${k8s_files[*]##*/}"
k8s "${k8s_files[@]}"
echo "ok -- ${#k8s_files[@]} files valid"
say "environment variables: binaries vs deploy files"
# The binaries' --help is checked against the same lists (built here if needed; incremental after `make test`).
(cd "$ROOT" && cargo build -q --workspace --bins)
"$VENV/bin/python" "$ROOT/deploy/lint_env.py" "$ROOT" "$ROOT/target/debug"
say "pod security: the restricted standard"
"$VENV/bin/python" "$ROOT/deploy/lint_pss.py" "$ROOT/deploy/k8s"
say "CRD manifests and alert rules (promtool $("$PROMTOOL" --version 2>&1 | head -1 | awk '{print $3}'))"
"$VENV/bin/python" "$ROOT/deploy/lint_k8s_extras.py" "$ROOT/deploy/k8s" "$TMP/rules.generated.yaml"
"$PROMTOOL" check rules "$TMP/rules.generated.yaml"
cp "$ROOT/deploy/k8s/monitoring/alerts.test.yaml" "$TMP/alerts.test.yaml"
"$PROMTOOL" test rules "$TMP/alerts.test.yaml"
