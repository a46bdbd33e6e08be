"""make lint-deploy, part 4: every pod in deploy/k8s passes the `restricted` Pod Security Standard (Kubernetes 1.30):
no host namespaces, ports or hostPath volumes; not privileged; runAsNonRoot; seccompProfile RuntimeDefault (or
Localhost); allowPrivilegeEscalation false; capabilities drop ALL and add nothing but NET_BIND_SERVICE; only the
volume types the standard allows. Checked per container (init containers too), with pod-level settings inherited as
Kubernetes does. Exit 1 with one line per violation.
"""
import pathlib
import sys

from ruamel.yaml import YAML

ALLOWED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected",
                   "secret"}


def pod_specs(doc):
    kind = doc.get("kind")
    spec = doc.get("spec") or {}
    if kind == "Pod":
        yield spec
    elif kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        yield (spec.get("template") or {}).get("spec") or {}
    elif kind == "CronJob":
        yield (((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}).get("spec") or {}


def violations(where, pod):
    out = []
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            out.append(f"{where}: {key} is set")
    for volume in pod.get("volumes", []) or []:
        kinds = set(volume) - {"name"}
        if not kinds <= ALLOWED_VOLUMES:
            out.append(f"{where}: volume {volume.get('name')} uses {sorted(kinds - ALLOWED_VOLUMES)}")
    pod_sc = pod.get("securityContext") or {}
    containers = (pod.get("containers") or []) + (pod.get("initContainers") or [])
    if not containers:
        out.append(f"{where}: no containers")
    for c in containers:
        name = f"{where} container {c.get('name')}"
        sc = c.get("securityContext") or {}
        if sc.get("privileged"):
            out.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{name}: allowPrivilegeEscalation must be false")
        if not sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")):
            out.append(f"{name}: runAsNonRoot must be true (pod or container)")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            out.append(f"{name}: runAsUser 0")
        seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            out.append(f"{name}: seccompProfile.type must be RuntimeDefault or Localhost (pod or container)")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            out.append(f"{name}: capabilities.drop must include ALL")
        extra = set(caps.get("add") or []) - {"NET_BIND_SERVICE"}
        if extra:
            out.append(f"{name}: capabilities.add {sorted(extra)}")
        for port in c.get("ports", []) or []:
            if port.get("hostPort"):
                out.append(f"{name}: hostPort {port['hostPort']}")
    return out


def main(folder):
    problems, pods = [], 0
    for path in sorted(pathlib.Path(folder).rglob("*.yaml")):
        for doc in YAML(typ="safe").load_all(path.read_text(encoding="utf-8")):
            if not isinstance(doc, dict):
                continue
            for pod in pod_specs(doc):
                pods += 1
                meta = doc.get("metadata") or {}
                name = meta.get("name") or meta.get("generateName", "?")
                problems += violations(f"{path.name} {doc['kind']}/{name}", pod)
    for p in problems:
        print(p)
    if problems:
        return 1
    print(f"pss: all {pods} pod templates pass the restricted Pod Security Standard")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parent / "k8s"))
