"""The load tests' plots (matplotlib, headless): throughput and latency percentiles over time, and throughput by
protocol and concurrency."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def per_second(records):
    """Per whole second of start time: answered-ok count, rejected count, and the p50/p99 latency (ms) of the
    ok answers."""
    if not records:
        return np.zeros(0), {}
    end = int(max(r.start for r in records)) + 1
    seconds = np.arange(end)
    ok, rejected, other = np.zeros(end), np.zeros(end), np.zeros(end)
    latencies = [[] for _ in range(end)]
    for r in records:
        s = int(r.start)
        if r.outcome == "ok":
            ok[s] += 1
            latencies[s].append(r.latency * 1e3)
        elif r.outcome == "rejected":
            rejected[s] += 1
        else:
            other[s] += 1
    p50 = np.array([np.percentile(x, 50) if x else np.nan for x in latencies])
    p99 = np.array([np.percentile(x, 99) if x else np.nan for x in latencies])
    return seconds, {"ok": ok, "rejected": rejected, "other": other, "p50": p50, "p99": p99}


def timeline(records, rss, path, title, marks=()):
    """Three panels over the run's seconds: answers per second by outcome, p50/p99 latency, server RSS."""
    seconds, s = per_second(records)
    fig, (a, b, c) = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    a.plot(seconds, s.get("ok", []), label="served")
    a.plot(seconds, s.get("rejected", []), label="rejected (429 / RESOURCE_EXHAUSTED)")
    a.plot(seconds, s.get("other", []), label="other failures")
    a.set_ylabel("requests / s")
    a.legend(loc="upper right", fontsize=8)
    b.plot(seconds, s.get("p50", []), label="p50")
    b.plot(seconds, s.get("p99", []), label="p99")
    b.set_ylabel("latency ms (served)")
    b.legend(loc="upper right", fontsize=8)
    if rss:
        t, m = zip(*rss)
        c.plot(t, m)
    c.set_ylabel("server RSS MB")
    c.set_xlabel("seconds")
    c.set_xlim(left=0)
    for axis in (a, b, c):
        for x in marks:
            axis.axvline(x, color="grey", linestyle=":")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def protocol_plot(rows, path):
    """Throughput and p99 against concurrency, one line per protocol."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for label in dict.fromkeys(r[0] for r in rows):
        points = [(c, r) for name, c, r in rows if name == label and "error" not in r]
        if not points:
            continue
        cs = [c for c, _ in points]
        a.plot(cs, [r["throughput"] for _, r in points], marker="o", label=label)
        b.plot(cs, [r["p99_ms"] for _, r in points], marker="o", label=label)
    for axis, name in ((a, "inferences / s"), (b, "p99 ms")):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("concurrency")
        axis.set_ylabel(name)
        axis.legend(fontsize=8)
    fig.suptitle("Protocol overhead: a 16x16 MatMul model (perf_analyzer)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
