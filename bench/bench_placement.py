"""`make bench-placement`: AWS's Inferentia layout table, reproduced on this machine's CPU cores.

For BERT-base and a MiniLM-sized BERT at seq 128, batch 1 and 6, fp32 and bf16, each layout of the 2 cores —
`groups: [2]` (one instance on both), `groups: [1, 1]` (data parallel), `pipeline: {stages: 2}` — and the
one-core baseline `groups: [1]` are served by coreserve and driven by perf_analyzer (closed loop, concurrency 4,
requests of the batch size). The table gives throughput, p50 and p95 latency and the cost per million inferences;
the scaling efficiency is the best two-core layout's throughput over twice the one-core throughput (the sum of
two one-core runs). A one-core run is the whole system on one CPU — a second server started with an affinity of
one CPU, and perf_analyzer pinned to it too — as each half of the two-core runs has the load generator and the
server's network threads beside its model instance; the `[1]` row of the two-core server (its model on one
pinned core, the client and the network threads free to use the other) is shown as well, with the efficiency
it would give.

usage: bench_placement.py --coreserve-bin B --perf-analyzer P --models DIR [--hourly-price X] [--json F] [--markdown F]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_serving import free_port, perf_analyzer, stop, wait_ready

WHOLE_ONE_CPU = "[1], whole system on 1 CPU"
LAYOUTS = [("[1] (1 core)", "groups: [1]"), ("[2]", "groups: [2]"), ("[1, 1]", "groups: [1, 1]"),
           ("pipeline 2x1", "pipeline: {stages: 2}")]
MODELS = ["minilm", "bert_base"]


def start(binary, model_path, precision, tmp, layouts=LAYOUTS, cpus=None):
    """One server with the model in every layout (model names l0..l3, measured one at a time, so their groups
    share the cores: share_cores), precision `precision`; `cpus`: the server's affinity (default: every CPU)."""
    repo = tmp / f"repo-{model_path.parent.parent.name}-{precision}{'-pinned' if cpus else ''}"
    dims = "{dims: [-1, 128]}"
    for i, (_, layout) in enumerate(layouts):
        (repo / f"l{i}" / "1").mkdir(parents=True)
        (repo / f"l{i}" / "1" / "model.onnx").symlink_to(model_path.resolve())
        (repo / f"l{i}" / "config.yaml").write_text(
            f"{layout}\nshare_cores: true\nprecision: {precision}\nmax_batch_size: 8\n"
            f"inputs: {{input_ids: {dims}, attention_mask: {dims}, token_type_ids: {dims}}}\n"
            "warmup: [{shapes: {input_ids: [6, 128], attention_mask: [6, 128], token_type_ids: [6, 128]}}]\n")
    ports = {"http": free_port(), "grpc": free_port(), "metrics": free_port()}
    config = tmp / f"{repo.name}.yaml"
    config.write_text(f"http: {{port: {ports['http']}}}\ngrpc: {{port: {ports['grpc']}}}\n"
                      f"metrics: {{port: {ports['metrics']}}}\nmodel_repository: [{repo}]\nlog_level: warning\n")
    proc = subprocess.Popen([str(binary), "serve", "--config", str(config)], stdout=subprocess.DEVNULL,
                            stderr=open(tmp / f"{repo.name}.log", "w"), start_new_session=True,
                            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
    wait_ready(ports["http"], proc, "coreserve", timeout=900)
    return proc, ports


def tables(rows):
    """The markdown tables of the measured rows, one per model, precision and batch, with the scaling efficiency."""
    lines = []
    for model in MODELS:
        for precision in ("fp32", "bf16"):
            for batch in (1, 6):
                group = [r for r in rows if r["model"] == model and r["precision"] == precision and r["batch"] == batch]
                if not group:
                    continue
                lines += [f"{model}, {precision}, batch {batch}, seq 128:", "",
                          "| layout | throughput /s | p50 ms | p95 ms | p99 ms | cost per million |", "|---|---|---|---|---|---|"]
                for r in group:
                    if "throughput" in r:
                        p95 = f"{r['p95_ms']:.1f}" if "p95_ms" in r else "-"
                        lines.append(f"| {r['layout']} | {r['throughput']:.1f} | {r['p50_ms']:.1f} | {p95} | {r['p99_ms']:.1f} "
                                     f"| {r['cost_per_million']:.4f} |")
                    else:
                        lines.append(f"| {r['layout']} | failed: {r['error'][-80:]!r} | | | | |")
                ok = [r for r in group if "throughput" in r]
                whole = next((r for r in ok if r["layout"] == WHOLE_ONE_CPU), None)
                one = next((r for r in ok if r["layout"].startswith("[1] ")), None)
                two = [r for r in ok if not r["layout"].startswith("[1]")]
                if whole and one and two:
                    best = max(two, key=lambda r: r["throughput"])
                    lines += ["", f"best: {best['layout']}; scaling efficiency "
                              f"{best['throughput'] / (2 * whole['throughput']):.3f} (against the model alone on "
                              f"one core: {best['throughput'] / (2 * one['throughput']):.3f})", ""]
    return "\n".join(lines) + "\n"


def main(argv):
    p = argparse.ArgumentParser()
    p.add_argument("--coreserve-bin", required=True)
    p.add_argument("--perf-analyzer", required=True)
    p.add_argument("--models", required=True, help="make_bench_models.py's folder (bert_base, minilm)")
    p.add_argument("--hourly-price", type=float, default=0.0725,
                   help="price per hour of a 2-vCPU host (default: AWS c7g.large on demand, us-east-1)")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--json")
    p.add_argument("--markdown")
    a = p.parse_args(argv)
    binary, pa = Path(a.coreserve_bin).resolve(), Path(a.perf_analyzer).resolve()
    tmp = Path(tempfile.mkdtemp(prefix="bench-placement-"))
    rows = []
    # A server over a missing file would wait, never ready, for the whole start timeout: skip absent models.
    present = [m for m in MODELS if (Path(a.models) / m / "1" / "model.onnx").exists()]
    if not present:
        sys.exit(f"bench_placement: none of {MODELS} in {a.models} (make_bench_models.py writes them)")
    for model in sorted(set(MODELS) - set(present)):
        print(f"bench_placement: {model} not in {a.models}, skipped", flush=True)
    for model in present:
        path = Path(a.models) / model / "1" / "model.onnx"
        for precision in ("fp32", "bf16"):
            proc, ports = start(binary, path, precision, tmp)
            try:
                for batch in (1, 6):
                    for i, (name, _) in enumerate(LAYOUTS):
                        r = perf_analyzer(pa, "grpc", ports["grpc"], f"l{i}", 4, a.seconds, batch=batch)
                        row = {"model": model, "precision": precision, "batch": batch, "layout": name, **r}
                        if "throughput" in r:  # inferences per second (perf_analyzer counts rows)
                            row["cost_per_million"] = a.hourly_price / 3600 / row["throughput"] * 1e6
                        rows.append(row)
                        print(json.dumps(row), flush=True)
            finally:
                stop(proc)
            cpu = min(os.sched_getaffinity(0))
            proc, ports = start(binary, path, precision, tmp, layouts=[(WHOLE_ONE_CPU, "groups: [1]")], cpus={cpu})
            try:
                for batch in (1, 6):
                    r = perf_analyzer(pa, "grpc", ports["grpc"], "l0", 4, a.seconds, batch=batch, cpus={cpu})
                    row = {"model": model, "precision": precision, "batch": batch, "layout": WHOLE_ONE_CPU, **r}
                    if "throughput" in r:
                        row["cost_per_million"] = a.hourly_price / 3600 / row["throughput"] * 1e6
                    rows.append(row)
                    print(json.dumps(row), flush=True)
            finally:
                stop(proc)
    text = tables(rows)
    print(text)
    if a.markdown:
        Path(a.markdown).write_text(text)
    if a.json:
        Path(a.json).write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
