"""Draws bench/results/latest.png from the figures `bench/run.sh` collected (one `section<TAB>label<TAB>value` per line).

Left: commit→succeeded latency percentiles by submission rate. Right: drain throughput by system (and Ackbox's
scale-out runs). Run by bench/run.sh with the bench venv's matplotlib.
"""
import collections
import sys

import matplotlib

matplotlib.use("Agg")  # no display on the bench machine
import matplotlib.pyplot as plt  # noqa: E402


def main(data_path, png_path):
    latency = collections.defaultdict(dict)  # rate -> {p50, p99}
    drain = []  # (label, jobs/s)
    for line in open(data_path, encoding="utf-8"):
        section, label, value = line.rstrip("\n").split("\t")
        if section in ("p50", "p99"):
            latency[int(label)][section] = float(value)
        elif section == "drain":
            drain.append((label, float(value)))

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    rates = sorted(latency)
    if rates:
        for pct, style in (("p50", "o-"), ("p99", "s--")):
            left.plot(rates, [latency[r].get(pct) for r in rates], style, label=pct)
        left.axhline(10, color="green", linewidth=0.8, linestyle=":", label="goal p50 ≤ 10 ms (200/s)")
        left.axhline(30, color="red", linewidth=0.8, linestyle=":", label="goal p99 ≤ 30 ms (200/s)")
        left.set_xscale("log")
        left.set_yscale("log")
        left.set_xticks(rates, [f"{r}/s" for r in rates])
        left.set_xlabel("submission rate (open loop, noop jobs)")
        left.set_ylabel("commit → succeeded (ms)")
        left.set_title("End-to-end latency")
        left.legend(fontsize=8)
        left.grid(True, which="both", alpha=0.3)
    if drain:
        labels = [d[0] for d in drain]
        values = [d[1] for d in drain]
        colors = ["tab:blue" if label.startswith("Ackbox") else "tab:gray" for label in labels]
        bars = right.barh(labels, values, color=colors)
        right.bar_label(bars, [f"{v:,.0f}" for v in values], fontsize=8, padding=3)
        right.invert_yaxis()
        right.set_xlabel("jobs per second (drain of preloaded noop jobs)")
        right.set_title("Drain throughput")
        right.margins(x=0.2)
        right.tick_params(axis="y", labelsize=8)
    fig.suptitle("Ackbox make bench (2-core machine, same Postgres, synchronous_commit=on)")
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
