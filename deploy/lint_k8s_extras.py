"""make lint-deploy, part 5: the manifests for operators' CRDs (deploy/k8s/monitoring, deploy/k8s/keda), which the
Kubernetes schemas do not cover, agree with the rest of deploy/k8s:
  - the PodMonitor's port name is a container port of every pod it selects;
  - the ScaledObject targets the worker Deployment, and its maxReplicaCount equals the HPA's maxReplicas, the
    workers' ACKBOX_WORKER_MAX_CONSUMERS and the relay's ACKBOX_TOPIC_PARTITIONS (more workers than partitions idle);
  - the PrometheusRule's rule groups are written to the file given as argv[2], for promtool.
"""
import pathlib
import sys

from ruamel.yaml import YAML


def load(path):
    return [d for d in YAML(typ="safe").load_all(path.read_text(encoding="utf-8")) if isinstance(d, dict)]


def main(k8s, rules_out):
    k8s = pathlib.Path(k8s)
    docs = [d for p in sorted(k8s.glob("*.yaml")) for d in load(p)]
    problems = []
    deployments = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "Deployment"}
    maps = {d["metadata"]["name"]: d.get("data") or {} for d in docs if d.get("kind") == "ConfigMap"}
    hpa = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "HorizontalPodAutoscaler"}

    for monitor in load(k8s / "monitoring/pod-monitor.yaml"):
        selected = monitor["spec"]["selector"]["matchExpressions"][0]["values"]
        for endpoint in monitor["spec"]["podMetricsEndpoints"]:
            for name in selected:
                pod = deployments[name]["spec"]["template"]["spec"]
                ports = {p.get("name") for c in pod["containers"] for p in c.get("ports", [])}
                if endpoint["port"] not in ports:
                    problems.append(f"PodMonitor: {name} has no container port named {endpoint['port']}")

    for scaled in load(k8s / "keda/scaled-object.yaml"):
        target = scaled["spec"]["scaleTargetRef"]["name"]
        if target not in deployments:
            problems.append(f"ScaledObject: no Deployment {target}")
        wanted = {
            "ScaledObject maxReplicaCount": scaled["spec"]["maxReplicaCount"],
            "HPA ackbox-worker maxReplicas": hpa["ackbox-worker"]["spec"]["maxReplicas"],
            "ACKBOX_WORKER_MAX_CONSUMERS": int(maps["ackbox-worker"]["ACKBOX_WORKER_MAX_CONSUMERS"]),
            "ACKBOX_TOPIC_PARTITIONS": int(maps["ackbox-relay"]["ACKBOX_TOPIC_PARTITIONS"]),
        }
        if len(set(wanted.values())) != 1:
            problems.append(f"worker scale bounds disagree: {wanted}")

    groups = []
    for rule in load(k8s / "monitoring/prometheus-rule.yaml"):
        groups += rule["spec"]["groups"]
    out = pathlib.Path(rules_out)
    with out.open("w", encoding="utf-8") as f:
        YAML().dump({"groups": groups}, f)

    for p in problems:
        print(p)
    if problems:
        return 1
    print(f"crds: PodMonitor ports and worker scale bounds agree; {sum(len(g['rules']) for g in groups)} alert "
          f"rules written for promtool")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
