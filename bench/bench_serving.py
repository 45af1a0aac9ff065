"""`make bench-serving`: coreserve served over the network against MLServer serving the same ONNX files through
ONNX Runtime (bench/mlserver_onnx.py), in one run, on the same cores.

Models: a tiny one (one 16x16 MatMul: the protocol's cost dominates) and BERT-base (seq 128, batch 1). For each
server, protocol (HTTP JSON, gRPC with raw tensors) and concurrency (1, 4, 16), a closed-loop load generator of
worker processes (each one connection, one request at a time) measures throughput and p50/p99 latency; the same
generator drives both servers, so its own cost weighs on both alike. perf_analyzer measures coreserve over HTTP
with Triton's binary tensors and over gRPC (MLServer implements neither the binary extension nor Triton's model
configuration RPC perf_analyzer needs). Finally BERT-base's best served throughput is divided by the runtime's
in-process throughput on the same cores (bench_session).

usage: bench_serving.py --coreserve-bin B --bench-bin B --perf-analyzer P --mlserver-bin M --bert DIR/model.onnx
                        [--json F] [--markdown F] [--seconds S] [--threads N]
"""
import argparse
import http.client
import json
import multiprocessing as mp
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper
from tritonclient.grpc import service_pb2, service_pb2_grpc

HERE = Path(__file__).resolve().parent
LEVELS = [1, 4, 16]
V2_TYPES = {np.dtype(np.float32): "FP32", np.dtype(np.int64): "INT64"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_model(path):
    w = np.random.default_rng(0).standard_normal((16, 16)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 16])],
        [onnx.numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def feeds_for(name):
    if name == "tiny":
        return {"x": np.random.default_rng(1).standard_normal((1, 16)).astype(np.float32)}
    rng = np.random.default_rng(2)
    return {"input_ids": rng.integers(0, 1000, (1, 128)).astype(np.int64), "attention_mask": np.ones((1, 128), np.int64),
            "token_type_ids": np.zeros((1, 128), np.int64)}


def wait_ready(port, proc, what, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/v2/health/ready")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)  # polling a starting server, not timing anything
    raise SystemExit(f"{what} not ready after {timeout} s")


def start_coreserve(binary, models, tmp, threads):
    repo = tmp / "coreserve-repo"
    for name, path in models.items():
        (repo / name / "1").mkdir(parents=True)
        (repo / name / "1" / "model.onnx").symlink_to(path.resolve())
        # max_batch_size > 0 and a concrete sequence length, so that perf_analyzer needs no --shape; no dynamic
        # batching, as MLServer's default.
        config = "max_batch_size: 16\n"
        if name == "bert_base":
            dims = "{dims: [-1, 128]}"
            config += f"inputs: {{input_ids: {dims}, attention_mask: {dims}, token_type_ids: {dims}}}\n"
        (repo / name / "config.yaml").write_text(config)
    ports = {"http": free_port(), "grpc": free_port(), "metrics": free_port()}
    config = tmp / "coreserve.yaml"
    config.write_text(
        f"http: {{port: {ports['http']}}}\ngrpc: {{port: {ports['grpc']}}}\nmetrics: {{port: {ports['metrics']}}}\n"
        f"model_repository: [{repo}]\nlog_level: warning\nmodel_defaults: {{threads: {threads}}}\n")
    proc = subprocess.Popen([str(binary), "serve", "--config", str(config)], stdout=subprocess.DEVNULL,
                            stderr=open(tmp / "coreserve.log", "w"), start_new_session=True)
    wait_ready(ports["http"], proc, "coreserve")
    return proc, ports


def start_mlserver(binary, models, tmp, threads):
    root = tmp / "mlserver-repo"
    ports = {"http": free_port(), "grpc": free_port(), "metrics": free_port()}
    root.mkdir()
    (root / "settings.json").write_text(json.dumps({"http_port": ports["http"], "grpc_port": ports["grpc"],
                                                     "metrics_port": ports["metrics"], "debug": False}))
    for name, path in models.items():
        (root / name).mkdir()
        (root / name / "model.onnx").symlink_to(path.resolve())
        (root / name / "model-settings.json").write_text(json.dumps({
            "name": name, "implementation": "mlserver_onnx.OnnxRuntimeModel",
            "parameters": {"uri": "./model.onnx"}}))
    env = dict(os.environ, PYTHONPATH=str(HERE), ORT_THREADS=str(threads))
    proc = subprocess.Popen([str(binary), "start", str(root)], stdout=subprocess.DEVNULL,
                            stderr=open(tmp / "mlserver.log", "w"), env=env, cwd=str(root),
                            start_new_session=True)
    wait_ready(ports["http"], proc, "MLServer")
    return proc, ports


def json_body(feeds):
    return json.dumps({"inputs": [{"name": n, "datatype": V2_TYPES[a.dtype], "shape": list(a.shape),
                                   "data": a.ravel().tolist()} for n, a in feeds.items()]}).encode()


def grpc_request(model, feeds):
    r = service_pb2.ModelInferRequest(model_name=model)
    for n, a in feeds.items():
        t = r.inputs.add()
        t.name, t.datatype = n, V2_TYPES[a.dtype]
        t.shape.extend(a.shape)
        r.raw_input_contents.append(a.tobytes())
    return r


def make_call(protocol, port, model, feeds):
    """A function that sends one request and waits for its answer (raising on any error)."""
    if protocol == "grpc":
        stub = service_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
        request = grpc_request(model, feeds)
        return lambda: stub.ModelInfer(request, timeout=60)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    body = json_body(feeds)

    def call():
        conn.request("POST", f"/v2/models/{model}/infer", body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {data[:200]!r}")
        return data
    return call


def worker(protocol, port, model, feeds, start, seconds, queue):
    call = make_call(protocol, port, model, feeds)
    while time.time() < start:  # warm-up until every worker starts measuring together
        call()
    latencies = []
    end = start + seconds
    while True:
        t = time.time()
        if t >= end:
            break
        call()
        latencies.append(time.time() - t)
    queue.put(latencies)


def closed_loop(protocol, port, model, feeds, concurrency, seconds):
    queue = mp.Queue()
    start = time.time() + 1.5  # time to connect and warm up
    procs = [mp.Process(target=worker, args=(protocol, port, model, feeds, start, seconds, queue))
             for _ in range(concurrency)]
    for p in procs:
        p.start()
    latencies = []
    for _ in procs:
        latencies += queue.get(timeout=seconds + 120)
    for p in procs:
        p.join()
    lat = np.array(latencies) * 1000
    return {"throughput": len(lat) / seconds, "p50_ms": float(np.percentile(lat, 50)),
            "p99_ms": float(np.percentile(lat, 99))}


def check_outputs(port, model, feeds, reference):
    """One HTTP JSON request: the server's first output agrees with ONNX Runtime's (so nothing measured is an
    error or a wrong answer)."""
    out = json.loads(make_call("http", port, model, feeds)())["outputs"][0]
    got = np.array(out["data"], np.float32).reshape(out["shape"])
    tol = 1e-3 * max(1.0, float(np.abs(reference).max()))
    assert got.shape == reference.shape and float(np.abs(got - reference).max()) <= tol, (model, got, reference)


PA_RE = {"throughput": re.compile(r"Throughput: ([\d.]+) infer/sec"),
         "p50_ms": re.compile(r"p50 latency: (\d+) usec"), "p95_ms": re.compile(r"p95 latency: (\d+) usec"),
         "p99_ms": re.compile(r"p99 latency: (\d+) usec")}


def perf_analyzer(binary, protocol, port, model, concurrency, seconds, batch=1, cpus=None, extra=()):
    """perf_analyzer at one concurrency; its throughput counts inferences (requests x batch). `cpus`: the CPUs it
    may run on (default: any); `extra`: more of its flags."""
    args = [str(binary), "-m", model, "-u", f"127.0.0.1:{port}", "-i", protocol, "-b", str(batch), "--concurrency-range",
            str(concurrency), "--measurement-interval", str(int(seconds * 1000)), "--max-trials", "6",
            "--stability-percentage", "25", "--input-data", "zero", *extra]  # 25%: this machine's neighbours are noisy
    run = subprocess.run(args, capture_output=True, text=True, timeout=600,
                         preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
    if run.returncode != 0:
        return {"error": (run.stdout + run.stderr)[-300:]}
    found = {k: r.findall(run.stdout) for k, r in PA_RE.items()}
    if not all(found.values()):
        return {"error": run.stdout[-300:]}
    return {"throughput": float(found["throughput"][-1]), "p50_ms": int(found["p50_ms"][-1]) / 1000,
            "p95_ms": int(found["p95_ms"][-1]) / 1000, "p99_ms": int(found["p99_ms"][-1]) / 1000}


def in_process(bench_bin, model, feeds, threads, seconds, tmp):
    args = [str(bench_bin), str(model), "--threads", str(threads), "--seconds", str(seconds)]
    for name, a in feeds.items():
        np.save(tmp / f"{name}.npy", a)
        args += ["--input", f"{name}={tmp / name}.npy"]
    out = json.loads(subprocess.run(args, capture_output=True, text=True, check=True, timeout=600).stdout)
    return 1000.0 / out["mean_ms"]


def stop(proc):
    """SIGTERM to the server's process group (MLServer runs its inference workers as child processes)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()


def main(argv):
    p = argparse.ArgumentParser()
    p.add_argument("--coreserve-bin", required=True)
    p.add_argument("--bench-bin", required=True)
    p.add_argument("--perf-analyzer", required=True)
    p.add_argument("--mlserver-bin", required=True)
    p.add_argument("--bert", required=True, help="BERT-base model.onnx (make bench-models makes it)")
    p.add_argument("--json")
    p.add_argument("--markdown")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    a = p.parse_args(argv)
    for flag in ("coreserve_bin", "bench_bin", "perf_analyzer", "mlserver_bin", "bert"):
        setattr(a, flag, Path(getattr(a, flag)).resolve())  # the servers run in their own folders
    tmp = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    tiny = tmp / "tiny.onnx"
    tiny_model(tiny)
    models = {"tiny": tiny, "bert_base": Path(a.bert)}
    feeds = {name: feeds_for(name) for name in models}
    reference = {name: ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds[name])[0]
                 for name, path in models.items()}
    rows = []
    for server in ("coreserve", "mlserver"):
        proc, ports = (start_coreserve(a.coreserve_bin, models, tmp, a.threads) if server == "coreserve"
                       else start_mlserver(a.mlserver_bin, models, tmp, a.threads))
        try:
            for model in models:
                check_outputs(ports["http"], model, feeds[model], reference[model])
                for protocol in ("http-json", "grpc"):
                    for c in LEVELS:
                        r = closed_loop("grpc" if protocol == "grpc" else "http", ports[protocol.split("-")[0]],
                                        model, feeds[model], c, a.seconds)
                        rows.append({"server": server, "generator": "ours", "model": model, "protocol": protocol,
                                     "concurrency": c, **r})
                        print(json.dumps(rows[-1]), flush=True)
                if server == "coreserve":
                    for protocol, port in (("http", ports["http"]), ("grpc", ports["grpc"])):
                        for c in LEVELS:
                            r = perf_analyzer(a.perf_analyzer, protocol, port, model, c, a.seconds)
                            rows.append({"server": server, "generator": "perf_analyzer", "model": model,
                                         "protocol": "http-binary" if protocol == "http" else "grpc",
                                         "concurrency": c, **r})
                            print(json.dumps(rows[-1]), flush=True)
        finally:
            stop(proc)
    inproc = in_process(a.bench_bin, models["bert_base"], feeds["bert_base"], a.threads, max(a.seconds, 5), tmp)
    served = max(r["throughput"] for r in rows if r["server"] == "coreserve" and r["model"] == "bert_base"
                 and "throughput" in r)
    summary = {"bert_in_process_per_s": inproc, "bert_best_served_per_s": served, "served_over_in_process": served / inproc}
    ratios = []
    for r in rows:
        if r["server"] != "coreserve" or r["generator"] != "ours":
            continue
        peer = next(x for x in rows if x["server"] == "mlserver" and x["model"] == r["model"]
                    and x["protocol"] == r["protocol"] and x["concurrency"] == r["concurrency"])
        ratios.append({"model": r["model"], "protocol": r["protocol"], "concurrency": r["concurrency"],
                       "coreserve": r["throughput"], "mlserver": peer["throughput"],
                       "ratio": r["throughput"] / peer["throughput"]})
    result = {"date": time.strftime("%Y-%m-%d"), "threads": a.threads, "seconds": a.seconds, "rows": rows,
              "ratios": ratios, "summary": summary}
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=1))
    lines = ["| model | protocol | concurrency | coreserve /s | MLServer /s | ratio | coreserve p50 / p99 ms | MLServer p50 / p99 ms |",
             "|---|---|---|---|---|---|---|---|"]
    for q in ratios:
        c = next(r for r in rows if r["server"] == "coreserve" and r["generator"] == "ours" and r["model"] == q["model"]
                 and r["protocol"] == q["protocol"] and r["concurrency"] == q["concurrency"])
        m = next(r for r in rows if r["server"] == "mlserver" and r["model"] == q["model"]
                 and r["protocol"] == q["protocol"] and r["concurrency"] == q["concurrency"])
        lines.append(f"| {q['model']} | {q['protocol']} | {q['concurrency']} | {q['coreserve']:.1f} | {q['mlserver']:.1f} "
                     f"| {q['ratio']:.2f} | {c['p50_ms']:.2f} / {c['p99_ms']:.2f} | {m['p50_ms']:.2f} / {m['p99_ms']:.2f} |")
    lines += ["", "perf_analyzer against coreserve:", "",
              "| model | protocol | concurrency | throughput /s | p50 / p99 ms |", "|---|---|---|---|---|"]
    for r in rows:
        if r["generator"] == "perf_analyzer":
            body = (f"{r['throughput']:.1f} | {r['p50_ms']:.2f} / {r['p99_ms']:.2f}" if "throughput" in r
                    else f"error: {r['error'][-80:]} | ")
            lines.append(f"| {r['model']} | {r['protocol']} | {r['concurrency']} | {body} |")
    lines += ["", f"BERT-base in-process: {inproc:.1f}/s; best served: {served:.1f}/s; "
              f"served / in-process = {served / inproc:.3f}"]
    text = "\n".join(lines) + "\n"
    print(text)
    if a.markdown:
        Path(a.markdown).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
