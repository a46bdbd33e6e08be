"""make lint-deploy, part 2: every environment variable a service binary reads appears in each deploy target, and
every variable a deploy target sets is read by some binary (no typos, no dead knobs).

Read = a string literal "ACKBOX_*", "KAFKA_*" or "DATABASE_*" in api/, relay/, worker/ or shared/{types,db,runtime}
sources (the test harness, shared/testing, excluded), plus RUST_LOG (env_logger) and OTEL_EXPORTER_OTLP_ENDPOINT
(opentelemetry-otlp). Set = environment keys of the ackbox services in
deploy/compose/docker-compose.yml; ConfigMap data, Secret data and container env in deploy/k8s/*.yaml.
"""
import pathlib
import re
import sys

from ruamel.yaml import YAML

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCES = ["api/src", "relay/src", "worker/src", "shared/types/src", "shared/db/src", "shared/runtime/src"]
NOT_SERVICE_CODE = set()  # the test harness (shared/testing) is not read at all
ACKBOX_SERVICES = {"migrate", "api", "relay", "worker"}
VAR = re.compile(r'"((?:ACKBOX|KAFKA|DATABASE)_[A-Z0-9_]+)"')


def read_by_binaries(root):
    # RUST_LOG is env_logger's; OTEL_EXPORTER_OTLP_ENDPOINT is opentelemetry-otlp's (ackbox_runtime::telemetry).
    found = {"RUST_LOG", "OTEL_EXPORTER_OTLP_ENDPOINT"}
    for src in SOURCES:
        for path in (root / src).rglob("*.rs"):
            if str(path.relative_to(root)) in NOT_SERVICE_CODE:
                continue
            found.update(VAR.findall(path.read_text(encoding="utf-8")))
    return found


def set_by_compose(path):
    doc = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    names = set()
    for name, service in doc.get("services", {}).items():
        if name in ACKBOX_SERVICES:
            names.update((service.get("environment") or {}).keys())
    return names


def set_by_k8s(folder):
    names = set()
    for path in sorted(folder.glob("*.yaml")):
        for doc in YAML(typ="safe").load_all(path.read_text(encoding="utf-8")):
            if not isinstance(doc, dict):
                continue
            kind = doc.get("kind")
            if kind == "ConfigMap":
                names.update((doc.get("data") or {}).keys())
            elif kind == "Secret":
                names.update((doc.get("stringData") or {}).keys())
                names.update((doc.get("data") or {}).keys())
            spec = doc.get("spec", {}) or {}
            pod = (spec.get("template", {}) or {}).get("spec", {}) or {}
            for container in pod.get("containers", []) or []:
                names.update(e["name"] for e in container.get("env", []) or [])
    return names


def compare(what, read, declared):
    problems = []
    for name in sorted(read - declared):
        problems.append(f"{what}: {name} is read by a binary but not set (add it, with its default)")
    for name in sorted(declared - read):
        problems.append(f"{what}: {name} is set but no binary reads it (a typo or a dead knob)")
    return problems


def main(root):
    read = read_by_binaries(root)
    problems = compare("deploy/compose/docker-compose.yml", read, set_by_compose(root / "deploy/compose/docker-compose.yml"))
    problems += compare("deploy/k8s", read, set_by_k8s(root / "deploy/k8s"))
    for p in problems:
        print(p)
    if problems:
        return 1
    print(f"env: all {len(read)} variables the binaries read are set in compose and k8s, and nothing else is")
    return 0


if __name__ == "__main__":
    sys.exit(main(pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT))
