#!/usr/bin/env python3
"""coreserve's runtime against ONNX Runtime and OpenVINO: same model file, inputs and thread count, one run.

For each case it times coreserve's Session::Run in-process (bench_session), an onnxruntime.InferenceSession (all
graph optimizations, intra-op threads = --threads) and, when the openvino package is installed, an OpenVINO CPU
compiled model reading the same .onnx (INFERENCE_NUM_THREADS = --threads, f32 inference precision, latency hint),
each for --seconds after warm-up; then prints p50/p95 latency, throughput and coreserve's throughput as a ratio to
each anchor (> 1: coreserve is faster). Writes the table as markdown (--markdown) and raw numbers as JSON (--json).

Then, for the reduced precisions (--precisions, default bf16,int8): coreserve with `--precision bf16` against ORT fp32
(the issue's goal: >= 1.8x on BERT-base) and OpenVINO with its bf16 inference precision; coreserve `--precision int8`
against ORT running the same model quantized by its own quantize_dynamic (QInt8 weights; goal >= 1.2x), each with
the accuracy of coreserve's outputs against ORT fp32 (cosine similarity and max error relative to max |reference|,
computed with `coreserve run`).

usage: bench_models.py --bench-bin build/bench/bench_session --coreserve-bin build/coreserve --models DIR
                       [--threads 2] [--seconds 4] [--precisions bf16,int8] [--repeat N]
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

try:
    import openvino as ov
except ImportError:
    ov = None

CASES = [  # (model, batch, seq); cases whose model is missing from --models are skipped
    ("bert_base", 1, 128), ("bert_base", 8, 128), ("distilbert", 1, 128), ("roberta_base", 1, 128),
    ("gpt2", 1, 128), ("resnet50", 1, None), ("resnet50", 8, None),
    ("bert_tiny", 1, 128), ("resnet_tiny", 1, None),
]


def make_inputs(session, batch, seq, rng):
    feeds = {}
    for meta in session.get_inputs():
        if meta.name == "pixel_values":
            side = meta.shape[2] if isinstance(meta.shape[2], int) else 224
            feeds[meta.name] = rng.standard_normal((batch, 3, side, side)).astype(np.float32)
        elif meta.name == "input_ids":
            feeds[meta.name] = rng.integers(0, 1000, (batch, seq), dtype=np.int64)
        elif meta.name == "attention_mask":
            feeds[meta.name] = np.ones((batch, seq), np.int64)
        else:
            feeds[meta.name] = np.zeros((batch, seq), np.int64)
    return feeds


def timed(run, seconds):
    for _ in range(3):
        run()
    ms, start = [], time.perf_counter()
    while len(ms) < 3 or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        run()
        ms.append((time.perf_counter() - t0) * 1e3)
    ms.sort()
    return {"runs": len(ms), "p50_ms": ms[len(ms) // 2], "p95_ms": ms[min(len(ms) - 1, len(ms) * 95 // 100)],
            "mean_ms": sum(ms) / len(ms)}


def ort_session(path, threads):
    """The ORT anchor: all graph optimizations, intra-op threads = the cores coreserve gets."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def time_ort(session, feeds, seconds):
    return timed(lambda: session.run(None, feeds), seconds)


def time_openvino(path, feeds, threads, seconds, precision="f32"):
    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(path)), "CPU",
                                  {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": precision,
                                   "PERFORMANCE_HINT": "LATENCY"})
    request = compiled.create_infer_request()
    return timed(lambda: request.infer(feeds), seconds)


def time_coreserve(bench_bin, path, feeds, threads, seconds, tmp, precision="fp32"):
    args = [bench_bin, str(path), "--threads", str(threads), "--seconds", str(seconds), "--precision", precision]
    for name, array in feeds.items():
        f = Path(tmp) / f"{name}.npy"
        np.save(f, array)
        args += ["--input", f"{name}={f}"]
    out = subprocess.run(args, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def accuracy(coreserve_bin, path, feeds, reference, precision, tmp):
    """coreserve's outputs in `precision` against the fp32 reference: worst cosine and relative max error."""
    out = Path(tmp) / f"out-{precision}"
    args = [coreserve_bin, "run", str(path), "--output-dir", str(out), "--precision", precision]
    for name, array in feeds.items():
        f = Path(tmp) / f"{name}.npy"
        np.save(f, array)
        args += ["--input", f"{name}={f}"]
    subprocess.run(args, capture_output=True, text=True, check=True)
    cos, rel = 1.0, 0.0
    for name, ref in reference.items():
        got = np.load(out / f"{name}.npy").astype(np.float64).ravel()
        ref = ref.astype(np.float64).ravel()
        cos = min(cos, float(got @ ref / (np.linalg.norm(got) * np.linalg.norm(ref))))
        rel = max(rel, float(np.abs(got - ref).max() / np.abs(ref).max()))
    return {"cosine": cos, "max_rel_error": rel}


LOWP_CASES = [("bert_base", 1, 128), ("bert_base", 8, 128), ("distilbert", 1, 128), ("roberta_base", 1, 128),
              ("gpt2", 1, 128), ("resnet50", 1, None)]


def reduced_precision(a, rng, tmp):
    """The bf16 / int8 table: rows (markdown cells) and raw results."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    rows, raw = [], []
    for model, batch, seq in LOWP_CASES:
        path = Path(a.models) / model / "1" / "model.onnx"
        if not path.exists():
            continue
        session = ort_session(path, a.threads)
        feeds = make_inputs(session, batch, seq, rng)
        reference = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
        ort_fp32 = time_ort(session, feeds, a.seconds)
        del session
        label = f"{model} b{batch}" + (f" s{seq}" if seq else "")
        for precision in a.precisions:
            acc = accuracy(a.coreserve_bin, path, feeds, reference, precision, tmp)
            anchor = "ORT int8" if precision == "int8" else "ORT fp32"
            if precision == "int8":
                qpath = Path(tmp) / f"{model}-int8.onnx"
                if not qpath.exists():
                    quantize_dynamic(str(path), str(qpath), weight_type=QuantType.QInt8)
            # The goal's anchor is timed --repeat times, alternating with coreserve, each time in a fresh session
            # (an ORT session's speed can stay 1.5x off for its whole life on a shared host); the other anchors once.
            pairs = []
            for _ in range(a.repeat):
                mine = time_coreserve(a.bench_bin, path, feeds, a.threads, a.seconds, tmp, precision)
                fresh = ort_session(qpath if precision == "int8" else path, a.threads)
                pairs.append((mine, time_ort(fresh, feeds, a.seconds)))
                del fresh
            ratios = sorted(theirs["mean_ms"] / mine["mean_ms"] for mine, theirs in pairs)
            mine, goal = sorted(pairs, key=lambda p: p[1]["mean_ms"] / p[0]["mean_ms"])[len(pairs) // 2]
            result = {"case": label, "precision": precision, "coreserve": mine, "ORT fp32": ort_fp32, "accuracy": acc}
            result[anchor] = goal
            if precision != "int8" and ov:
                result["OpenVINO bf16"] = time_openvino(path, feeds, a.threads, a.seconds, "bf16")
            tput = lambda r: 1e3 * batch / r["mean_ms"]  # noqa: E731
            others = [k for k in ("ORT fp32", "ORT int8", "OpenVINO bf16") if k in result]
            spread = f"; {ratios[0]:.2f}-{ratios[-1]:.2f} over {len(ratios)} pairs" if len(ratios) > 1 else ""
            cells = [label, precision, f"{mine['p50_ms']:.2f}", f"{tput(mine):.1f}"]
            cells += [f"{k} {tput(result[k]):.1f} ({result[k]['mean_ms'] / mine['mean_ms']:.2f}x"
                      f"{spread if k == anchor else ''})" for k in others]
            cells += [f"{acc['cosine']:.6f}", f"{acc['max_rel_error']:.1e}"]
            result["ratio"] = {k: result[k]["mean_ms"] / mine["mean_ms"] for k in others}
            result["goal_anchor"] = anchor
            result["goal_ratios"] = ratios
            rows.append("| " + " | ".join(cells) + " |")
            raw.append(result)
            print(rows[-1], flush=True)
    return rows, raw


QDQ_CASES = [("resnet50", 1, None, ["Conv"]), ("bert_base", 1, 128, ["MatMul"])]


def qdq_models(a, rng, tmp):
    """The models as ONNX Runtime's quantize_static writes them (QDQ, u8 activations, s8 weights per channel,
    calibrated on two random inputs): coreserve and ORT run the same quantized file."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    rows, raw = [], []
    for model, batch, seq, ops in QDQ_CASES:
        path = Path(a.models) / model / "1" / "model.onnx"
        if not path.exists():
            continue
        session = ort_session(path, a.threads)
        calibration = iter([make_inputs(session, batch, seq, rng) for _ in range(2)])
        del session

        class Reader(CalibrationDataReader):
            def get_next(self):
                return next(calibration, None)

        qpath = Path(tmp) / f"{model}-qdq.onnx"
        quantize_static(str(path), str(qpath), Reader(), quant_format=QuantFormat.QDQ, op_types_to_quantize=ops,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True)
        qsession = ort_session(qpath, a.threads)
        feeds = make_inputs(qsession, batch, seq, rng)
        reference = dict(zip([o.name for o in qsession.get_outputs()], qsession.run(None, feeds)))
        theirs = time_ort(qsession, feeds, a.seconds)
        del qsession
        mine = time_coreserve(a.bench_bin, qpath, feeds, a.threads, a.seconds, tmp)
        acc = accuracy(a.coreserve_bin, qpath, feeds, reference, "fp32", tmp)
        label = f"{model} b{batch}" + (f" s{seq}" if seq else "") + f" (QDQ {'+'.join(ops)})"
        ratio = theirs["mean_ms"] / mine["mean_ms"]
        rows.append(f"| {label} | {mine['p50_ms']:.2f} | {theirs['p50_ms']:.2f} | {ratio:.2f} | "
                    f"{acc['cosine']:.6f} | {acc['max_rel_error']:.1e} |")
        raw.append({"case": label, "coreserve": mine, "ORT": theirs, "ratio": ratio, "accuracy_vs_ort": acc})
        print(rows[-1], flush=True)
    return rows, raw


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bench-bin", required=True)
    p.add_argument("--models", required=True)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--coreserve-bin", help="the coreserve binary, for the reduced-precision accuracy")
    p.add_argument("--precisions", default="bf16,int8", help="reduced precisions to measure ('' for none)")
    p.add_argument("--repeat", type=int, default=1,
                   help="reduced precisions: time coreserve and the goal's anchor this many times, alternating; "
                        "the row shows the pair with the median ratio and the range")
    p.add_argument("--markdown")
    p.add_argument("--json")
    a = p.parse_args(argv)
    rng = np.random.default_rng(0)
    rows, raw = [], []
    anchors = ["ORT"] + (["OpenVINO"] if ov else [])
    with tempfile.TemporaryDirectory() as tmp:
        for model, batch, seq in CASES:
            path = Path(a.models) / model / "1" / "model.onnx"
            if not path.exists():
                continue
            session = ort_session(path, a.threads)
            feeds = make_inputs(session, batch, seq, rng)
            result = {"coreserve": time_coreserve(a.bench_bin, path, feeds, a.threads, a.seconds, tmp),
                      "ORT": time_ort(session, feeds, a.seconds)}
            del session
            if ov:
                result["OpenVINO"] = time_openvino(path, feeds, a.threads, a.seconds)
            label = f"{model} b{batch}" + (f" s{seq}" if seq else "")
            cells = [label]
            for who in ["coreserve"] + anchors:
                r = result[who]
                cells += [f"{r['p50_ms']:.2f}", f"{r['p95_ms']:.2f}", f"{1e3 * batch / r['mean_ms']:.1f}"]
            ratios = {who: result[who]["mean_ms"] / result["coreserve"]["mean_ms"] for who in anchors}
            cells += [f"{ratios[w]:.2f}" for w in anchors]
            rows.append("| " + " | ".join(cells) + " |")
            raw.append({"case": label, "threads": a.threads, **result, "ratio": ratios})
            print(rows[-1], flush=True)
        a.precisions = [x for x in a.precisions.split(",") if x]
        lowp_rows, lowp_raw = reduced_precision(a, rng, tmp) if a.precisions and a.coreserve_bin else ([], [])
        qdq_rows, qdq_raw = qdq_models(a, rng, tmp) if a.coreserve_bin else ([], [])
    head = ["case"] + [f"{w} {k}" for w in ["coreserve"] + anchors for k in ("p50 ms", "p95 ms", "items/s")]
    head += [f"coreserve/{w}" for w in anchors]
    table = "| " + " | ".join(head) + " |\n|" + "---|" * len(head) + "\n" + "\n".join(rows)
    if lowp_rows:
        lowp_head = ["case", "precision", "coreserve p50 ms", "coreserve items/s", "anchors items/s (coreserve ratio)",
                     "", "cosine vs fp32", "max err / max |ref|"]
        table += ("\n\nReduced precision (ratio = coreserve throughput / anchor throughput):\n\n| "
                  + " | ".join(lowp_head) + " |\n|" + "---|" * len(lowp_head) + "\n" + "\n".join(lowp_rows))
        raw += lowp_raw
    if qdq_rows:
        qdq_head = ["case", "coreserve p50 ms", "ORT p50 ms (same file)", "coreserve/ORT", "cosine vs ORT",
                    "max err / max |ref|"]
        table += ("\n\nModels quantized by ONNX Runtime's quantize_static (QDQ), both runtimes on the same file:\n\n| "
                  + " | ".join(qdq_head) + " |\n|" + "---|" * len(qdq_head) + "\n" + "\n".join(qdq_rows))
        raw += qdq_raw
    versions = f"onnxruntime {ort.__version__}" + (f", openvino {ov.__version__}" if ov else "")
    meta = f"{versions}; {a.threads} threads; {platform.machine()}; {time.strftime('%Y-%m-%d')}"
    print("\n" + table + "\n\n" + meta)
    if a.markdown:
        Path(a.markdown).write_text(table + "\n\n" + meta + "\n")
    if a.json:
        Path(a.json).write_text(json.dumps({"meta": meta, "results": raw}, indent=2) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
