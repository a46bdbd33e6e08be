"""make lint-deploy, part 2: each service gets exactly the environment it reads, in each deploy target.

For each of api, relay, worker (and the migrate one-shot), per target:
  1. every variable the service's binary reads is set for it;
  2. every variable set only for it (its own compose `environment` keys beyond the shared block, its own ConfigMaps
     and Secrets in k8s) is read by it: no typos, no dead knobs, and no setting on the wrong service (the topic's
     partitions on a worker, say, which never creates the topic);
  3. every variable of the shared block (compose's `x-ackbox-common`, k8s's `ackbox-common`) is read by some
     service that gets it.

Read = a string literal "ACKBOX_*", "KAFKA_*" or "DATABASE_*" in the service's sources: its own crate, plus the shared
crates it runs (shared/db and shared/types for all; shared/runtime for the three services, its kafka.rs for relay and
worker only), plus RUST_LOG (env_logger) and OTEL_EXPORTER_OTLP_ENDPOINT (opentelemetry-otlp). The migrate one-shot
(`ackbox-api migrate`) reads the database settings and RUST_LOG.

With a folder of built binaries (argv[2]), it also checks that each service's `--help` lists exactly the variables
its code reads (`[env: NAME]`, clap's env support): the help is the reference an SRE reads.
"""
import pathlib
import re
import subprocess
import sys

from ruamel.yaml import YAML

ROOT = pathlib.Path(__file__).resolve().parent.parent
SERVICES = ("api", "relay", "worker")
# Source path → services that run it; the longest matching path wins.
SOURCES = {
    "api/src": {"api"},
    "relay/src": {"relay"},
    "worker/src": {"worker"},
    "shared/types/src": {"api", "relay", "worker"},
    "shared/db/src": {"api", "relay", "worker", "migrate"},
    "shared/runtime/src": {"api", "relay", "worker"},
    "shared/runtime/src/kafka.rs": {"relay", "worker"},
}
VAR = re.compile(r'"((?:ACKBOX|KAFKA|DATABASE)_[A-Z0-9_]+)"')


def owners(rel):
    best = max((p for p in SOURCES if rel == p or rel.startswith(p + "/")), key=len)
    return SOURCES[best]


def read_by_service(root):
    # RUST_LOG is env_logger's; OTEL_EXPORTER_OTLP_ENDPOINT is opentelemetry-otlp's (ackbox_runtime::telemetry).
    read = {s: {"RUST_LOG", "OTEL_EXPORTER_OTLP_ENDPOINT"} for s in SERVICES}
    read["migrate"] = {"RUST_LOG"}
    for src in [p for p in SOURCES if not p.endswith(".rs")]:
        for path in (root / src).rglob("*.rs"):
            names = set(VAR.findall(path.read_text(encoding="utf-8")))
            for service in owners(str(path.relative_to(root))):
                read[service] |= names
    # The migrate one-shot reads only the database settings (DbConfig), not everything shared/db mentions.
    read["migrate"] = {"RUST_LOG", "DATABASE_URL", "ACKBOX_AUTO_MIGRATE", "ACKBOX_DB_POOL_SIZE",
                       "ACKBOX_DB_CONNECT_TIMEOUT_MS"} & (read["migrate"] | {"RUST_LOG"})
    return read


def compose_sets(path):
    doc = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    common = set((doc.get("x-ackbox-common") or {}).keys())
    per = {}
    for name, service in doc.get("services", {}).items():
        if name in SERVICES or name == "migrate":
            per[name] = set((service.get("environment") or {}).keys())
    return common, per


def k8s_sets(folder):
    maps, pods = {}, {}
    for path in sorted(folder.glob("*.yaml")):
        for doc in YAML(typ="safe").load_all(path.read_text(encoding="utf-8")):
            if not isinstance(doc, dict):
                continue
            meta = doc.get("metadata") or {}
            kind, name = doc.get("kind"), meta.get("name") or meta.get("generateName", "").rstrip("-")
            if kind == "ConfigMap":
                maps[name] = set((doc.get("data") or {}).keys())
            elif kind == "Secret":
                maps[name] = set((doc.get("stringData") or {}).keys()) | set((doc.get("data") or {}).keys())
            elif kind in ("Deployment", "Job"):
                pod = ((doc.get("spec") or {}).get("template") or {}).get("spec") or {}
                refs, env = [], set()
                for c in pod.get("containers", []) or []:
                    for src in c.get("envFrom", []) or []:
                        ref = src.get("configMapRef") or src.get("secretRef") or {}
                        refs.append(ref.get("name"))
                    env |= {e["name"] for e in c.get("env", []) or []}
                service = name.removeprefix("ackbox-")
                pods[service] = (refs, env)
    common = maps.get("ackbox-common", set())
    per, own = {}, {}
    for service, (refs, env) in pods.items():
        per[service] = set(env).union(*(maps.get(r, set()) for r in refs))
        own[service] = set(env).union(*(maps.get(r, set()) for r in refs if r != "ackbox-common"))
    return common, per, own


def check(target, read, common, per, own):
    problems = []
    for service in SERVICES + ("migrate",):
        if service not in per:
            problems.append(f"{target}: no {service} service")
            continue
        for name in sorted(read[service] - per[service]):
            problems.append(f"{target}: {service} reads {name} but it is not set for it (add it, with its default)")
        if service == "migrate":
            continue
        for name in sorted(own[service] - read[service]):
            problems.append(f"{target}: {name} is set for {service}, which never reads it (a typo, a dead knob, or "
                            f"the wrong service)")
    users = set().union(*(read[s] for s in SERVICES))
    for name in sorted(common - users):
        problems.append(f"{target}: {name} is in the shared block but no service reads it")
    return problems


HELP_ENV = re.compile(r"\[env: ([A-Z0-9_]+)")


def check_help(bin_dir, read):
    problems = []
    for service in SERVICES:
        binary = pathlib.Path(bin_dir) / f"ackbox-{service}"
        out = subprocess.run([str(binary), "--help"], capture_output=True, text=True, check=True,
                             env={"PATH": "/usr/bin:/bin"}).stdout
        listed = set(HELP_ENV.findall(out))
        for name in sorted(read[service] - listed):
            problems.append(f"ackbox-{service} --help: {name} is read by its code but not listed")
        for name in sorted(listed - read[service]):
            problems.append(f"ackbox-{service} --help: {name} is listed but its code does not read it")
    return problems


def main(root, bin_dir=None):
    read = read_by_service(root)
    c_common, c_per = compose_sets(root / "deploy/compose/docker-compose.yml")
    c_own = {s: env - c_common for s, env in c_per.items()}
    problems = check("deploy/compose/docker-compose.yml", read, c_common, c_per, c_own)
    k_common, k_per, k_own = k8s_sets(root / "deploy/k8s")
    problems += check("deploy/k8s", read, k_common, k_per, k_own)
    if bin_dir:
        problems += check_help(bin_dir, read)
    for p in problems:
        print(p)
    if problems:
        return 1
    counts = ", ".join(f"{s} {len(read[s])}" for s in SERVICES + ("migrate",))
    also = ", and each binary's --help lists exactly those" if bin_dir else ""
    print(f"env: each service gets exactly what it reads, in compose and k8s ({counts} variables){also}")
    return 0


if __name__ == "__main__":
    sys.exit(main(pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT, sys.argv[2] if len(sys.argv) > 2 else None))
