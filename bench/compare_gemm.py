#!/usr/bin/env python3
"""coreserve's GEMM against the oneDNN anchor: reads bench_gemm_onednn's Google Benchmark JSON and prints (and
optionally writes) a markdown table, one row per shape x threads x precision: both sides' GFLOPS (GOP/s for int8),
coreserve's throughput as a ratio to oneDNN's (> 1: coreserve is faster) and each side's fraction of the
machine's peak for the precision on that many threads, measured in the same run (bench/gemm_peak.h). Then the
geometric mean of the ratio per model, precision and thread count, and the kernels each side ran.

The benchmark times both sides of a case in alternating slices (its `pair` rows): the ratio is the median of the
ratios within a pair of slices, and the range column shows their spread. With --benchmark_repetitions, the
medians over repetitions.

usage: compare_gemm.py build/bench_gemm_onednn.json [--markdown build/bench_gemm_onednn.md]

Exit status 1 when a case's two outputs disagreed (the benchmark reports those as errors and they get no ratio);
a run without oneDNN is reported loudly but is not a failure.
"""
import argparse
import json
import re
import sys
from collections import OrderedDict, defaultdict

import numpy as np

NAME = re.compile(r"^(?P<shape>[^/]+)/(?P<precision>fp32|bf16|int8)/(?P<m>\d+)x(?P<n>\d+)x(?P<k>\d+)"
                  r"/t(?P<threads>\d+)/pair(?:/.*)?$")


def load(path):
    with open(path) as f:
        report = json.load(f)
    # (shape, precision, m, n, k, threads) -> {"coreserve" / "onednn": {"gflops": [...], "peak": x, "label": s,
    # "error": s}, "pairs": {"ratio": [...], "min": [...], "max": [...]}}, one list entry per repetition
    cases = OrderedDict()
    for b in report.get("benchmarks", []):
        if b.get("run_type", "iteration") != "iteration":
            continue  # aggregates of --benchmark_repetitions: the median is taken below from the runs themselves
        match = NAME.match(b.get("run_name", b["name"]))
        if not match:
            continue
        g = match.groupdict()
        key = (g["shape"], g["precision"], int(g["m"]), int(g["n"]), int(g["k"]), int(g["threads"]))
        add_pair(cases.setdefault(key, {}), b)
    return report.get("context", {}), cases


def new_side():
    return {"gflops": [], "peak": 0.0, "label": "", "error": ""}


def add_pair(case, b):
    """Both sides from one `pair` row: label "coreserve <kernel> | oneDNN <implementation or why absent>"."""
    core, dnnl = case.setdefault("coreserve", new_side()), case.setdefault("onednn", new_side())
    pairs = case.setdefault("pairs", {"ratio": [], "min": [], "max": []})
    if b.get("error_occurred"):
        core["error"] = dnnl["error"] = b.get("error_message", "error")
        return
    label = b.get("label", "")
    core_label, _, dnnl_label = label.partition(" | oneDNN ")
    core["label"] = core_label.removeprefix("coreserve ")
    core["gflops"].append(b["coreserve_GFLOPS"])
    core["peak"] = dnnl["peak"] = b.get("peak_GFLOPS", 0.0)
    if "onednn_GFLOPS" not in b:
        dnnl["error"] = dnnl_label or "no oneDNN result"
        return
    dnnl["label"] = dnnl_label
    dnnl["gflops"].append(b["onednn_GFLOPS"])
    pairs["ratio"].append(b["ratio"])
    pairs["min"].append(b["ratio_min"])
    pairs["max"].append(b["ratio_max"])


def median(side):
    return float(np.median(side["gflops"])) if side and side["gflops"] else None


def fmt(value, digits=1):
    return "—" if value is None else f"{value:.{digits}f}"


def build_report(context, cases):
    anchor = context.get("onednn", "ABSENT (no 'onednn' in the JSON context)")
    absent = anchor.startswith("ABSENT")
    lines, warnings = [], []
    if absent:
        warnings.append(f"NO oneDNN ANCHOR IN THIS RUN: {anchor}. coreserve's numbers have nothing to be "
                        "compared with; install libdnnl-dev (scripts/install-deps.sh) and rebuild.")
    # The peak loops ran on 1 and on T threads at the start of the run: on cores of our own, T threads reach T
    # times the 1-thread rate. Less means other work shared the cores.
    scaling = []
    for key, value in context.items():
        match = re.match(r"peak_GFLOPS_(\w+)_t(\d+)$", key)
        one = context.get(f"peak_GFLOPS_{match.group(1)}_t1") if match else None
        if match and int(match.group(2)) > 1 and one and float(one) > 0:
            scaling.append(float(value) / float(one) / int(match.group(2)))
    if scaling and min(scaling) < 0.9:
        warnings.append(f"the cores were shared with other work when the run started (the multi-threaded peak "
                        f"loops reached only {min(scaling):.2f} of their thread count times the 1-thread rate): "
                        "the multi-threaded rows are not to be trusted (OpenMP's least: a descheduled thread "
                        "stalls its whole team); rerun on a quiet machine.")
    for w in warnings:
        lines.append(f"**WARNING: {w}**")
        lines.append("")
    top_warnings = len(warnings)
    load = ", ".join(f"{x:.2f}" for x in context.get("load_avg", []))
    lines.append(f"coreserve GEMM vs {anchor}; {context.get('num_cpus', '?')} CPUs at "
                 f"{context.get('mhz_per_cpu', '?')} MHz; load average at start {load or '?'}; "
                 f"{context.get('date', '')}")
    peaks = ", ".join(f"{k[len('peak_GFLOPS_'):]} {v}" for k, v in sorted(context.items())
                      if k.startswith("peak_GFLOPS_"))
    if peaks:
        lines.append(f"Measured peak, G(FL)OP/s by precision and threads: {peaks}.")
    lines.append("")
    lines.append("| shape | M | N | K | threads | precision | coreserve GFLOPS | oneDNN GFLOPS | coreserve/oneDNN | "
                 "range over pairs | coreserve × peak | oneDNN × peak |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    ratios = defaultdict(list)
    disagreements, failures = [], []
    kernels = defaultdict(set)
    for (shape, precision, m, n, k, threads), sides in cases.items():
        core, dnnl = sides.get("coreserve"), sides.get("onednn")
        core_gf, dnnl_gf = median(core), median(dnnl)
        pairs = sides["pairs"]
        ratio, spread = None, "—"
        if pairs["ratio"]:
            ratio = float(np.median(pairs["ratio"]))
            spread = f"{min(pairs['min']):.2f}–{max(pairs['max']):.2f}"
        peak = (core or dnnl or {}).get("peak", 0.0) or (dnnl or {}).get("peak", 0.0)
        cells = [fmt(core_gf), fmt(dnnl_gf), fmt(ratio, 2), spread,
                 fmt(core_gf / peak if core_gf and peak else None, 2),
                 fmt(dnnl_gf / peak if dnnl_gf and peak else None, 2)]
        for side_name, side in (("coreserve", core), ("oneDNN", dnnl)):
            if side and side["error"]:
                if "DISAGREE" in side["error"]:
                    if side_name == "oneDNN":
                        disagreements.append(f"{shape} {precision} {m}x{n}x{k} t{threads}: {side['error']}")
                elif not absent:
                    failures.append(f"{shape} {precision} {m}x{n}x{k} t{threads} {side_name}: {side['error']}")
            if side and side["label"]:
                kernels[(side_name, precision)].add(side["label"])
        if core and "DISAGREE" in core["error"]:
            cells[0] = cells[1] = "DISAGREE"
        if ratio is not None:
            ratios[(shape.split(".")[0], precision, threads)].append(ratio)
        lines.append(f"| {shape} | {m} | {n} | {k} | {threads} | {precision} | " + " | ".join(cells) + " |")
    lines.append("")
    if ratios:
        lines.append("Geometric mean of coreserve/oneDNN:")
        lines.append("")
        lines.append("| model | precision | threads | shapes | geomean |")
        lines.append("|---|---|---|---|---|")
        for (model, precision, threads), values in ratios.items():
            geomean = float(np.exp(np.mean(np.log(values))))
            lines.append(f"| {model} | {precision} | {threads} | {len(values)} | {geomean:.2f} |")
        lines.append("")
    if kernels:
        lines.append("Kernels run (the oneDNN label is the implementation it chose; a `ref` or `gemm:` one would "
                     "mean a misconfigured anchor):")
        lines.append("")
        for (side_name, precision), labels in sorted(kernels.items()):
            lines.append(f"- {side_name} {precision}: {', '.join(sorted(labels))}")
        lines.append("")
    fallbacks = sorted({label for (side_name, _), labels in kernels.items() if side_name == "oneDNN"
                        for label in labels if label.startswith(("ref", "gemm:"))})
    if fallbacks:
        warnings.append(f"oneDNN ran fallback implementations ({', '.join(fallbacks)}), not its brgemm kernels: "
                        "the anchor is not at its best on this CPU or with these attributes.")
    if disagreements:
        warnings.append(f"{len(disagreements)} case(s) where coreserve and oneDNN DISAGREE (no ratio given):\n  " +
                        "\n  ".join(disagreements))
    if failures:
        warnings.append(f"{len(failures)} benchmark(s) failed:\n  " + "\n  ".join(failures))
    for w in warnings[top_warnings:]:
        lines.append(f"**WARNING: {w}**")
        lines.append("")
    return "\n".join(lines), warnings, bool(disagreements)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("json", help="bench_gemm_onednn --benchmark_out JSON")
    parser.add_argument("--markdown", help="also write the table to this file")
    args = parser.parse_args()
    context, cases = load(args.json)
    if not cases:
        print(f"compare_gemm: no bench_gemm_onednn results in {args.json}", file=sys.stderr)
        return 1
    text, warnings, disagreed = build_report(context, cases)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")
    for w in warnings:
        print(f"\ncompare_gemm: WARNING: {w}", file=sys.stderr)
    return 1 if disagreed else 0


if __name__ == "__main__":
    sys.exit(main())
