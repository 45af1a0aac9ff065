#!/usr/bin/env python3
"""coreserve's runtime against ONNX Runtime, same model, inputs and thread count, measured in the same run.

For each case it runs bench_session (coreserve, in-process C++ timing) and an onnxruntime.InferenceSession (all
graph optimizations on, intra-op threads = --threads), each for --seconds after warm-up, and prints p50/p95
latency, throughput and the ratio coreserve/ORT of throughput (>1 means coreserve is faster). Writes the table as
markdown (--markdown) and the raw numbers as JSON (--json).

usage: bench_models.py --bench-bin build/bench/bench_session --models build/models [--threads 2] [--seconds 3]
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

CASES = [  # (model, batch, seq); cases whose model is not in --models are skipped
    ("bert_base", 1, 128), ("bert_base", 8, 128),
    ("bert_tiny", 1, 128), ("bert_tiny", 8, 128), ("resnet_tiny", 1, None), ("resnet_tiny", 8, None),
]


def make_inputs(model, batch, seq, rng):
    if model.startswith("bert"):
        ids = rng.integers(0, 1000, (batch, seq), dtype=np.int64)
        return {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    return {"pixel_values": rng.standard_normal((batch, 3, 32, 32)).astype(np.float32)}


def time_ort(path, inputs, threads, seconds):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    s = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    for _ in range(3):
        s.run(None, inputs)
    ms, start = [], time.perf_counter()
    while len(ms) < 3 or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        s.run(None, inputs)
        ms.append((time.perf_counter() - t0) * 1e3)
    ms.sort()
    return {"runs": len(ms), "p50_ms": ms[len(ms) // 2], "p95_ms": ms[min(len(ms) - 1, len(ms) * 95 // 100)],
            "mean_ms": sum(ms) / len(ms)}


def time_coreserve(bench_bin, path, inputs, threads, seconds, tmp):
    args = [bench_bin, str(path), "--threads", str(threads), "--seconds", str(seconds)]
    for name, array in inputs.items():
        f = Path(tmp) / f"{name}.npy"
        np.save(f, array)
        args += ["--input", f"{name}={f}"]
    out = subprocess.run(args, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bench-bin", required=True)
    p.add_argument("--models", required=True)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--markdown")
    p.add_argument("--json")
    a = p.parse_args(argv)
    rng = np.random.default_rng(0)
    rows, raw = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for model, batch, seq in CASES:
            path = Path(a.models) / model / "1" / "model.onnx"
            if not path.exists():
                continue
            inputs = make_inputs(model, batch, seq, rng)
            cs = time_coreserve(a.bench_bin, path, inputs, a.threads, a.seconds, tmp)
            rt = time_ort(path, inputs, a.threads, a.seconds)
            ratio = rt["mean_ms"] / cs["mean_ms"]
            label = f"{model} b{batch}" + (f" s{seq}" if seq else "")
            rows.append(f"| {label} | {cs['p50_ms']:.3f} | {cs['p95_ms']:.3f} | {1e3 * batch / cs['mean_ms']:.0f} | "
                        f"{rt['p50_ms']:.3f} | {rt['p95_ms']:.3f} | {1e3 * batch / rt['mean_ms']:.0f} | {ratio:.2f} |")
            raw.append({"case": label, "threads": a.threads, "coreserve": cs, "onnxruntime": rt,
                        "throughput_ratio": ratio})
            print(rows[-1], flush=True)
    header = ("| case | coreserve p50 ms | p95 ms | items/s | ORT p50 ms | p95 ms | items/s | coreserve/ORT |\n"
              "|---|---|---|---|---|---|---|---|")
    table = header + "\n" + "\n".join(rows)
    meta = f"onnxruntime {ort.__version__}, {a.threads} threads, {platform.machine()}, {time.strftime('%Y-%m-%d')}"
    print("\n" + table + "\n\n" + meta)
    if a.markdown:
        Path(a.markdown).write_text(table + "\n\n" + meta + "\n")
    if a.json:
        Path(a.json).write_text(json.dumps({"meta": meta, "results": raw}, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
