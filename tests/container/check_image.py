"""Checks a running coreserve container from outside, as its users would (`make container-test` runs it).

usage: check_image.py MODELS_DIR ARCH   (the container serves MODELS_DIR on 127.0.0.1:8000/8001/8002)

Health over HTTP and gRPC, an inference of each default model over HTTP (JSON and binary tensors) and gRPC with
tritonclient against ONNX Runtime on the same file, and a metrics scrape that promtool accepts, whose
coreserve_kernel_info names kernels of ARCH (so the image's binary, not a host one, answered).
"""
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import onnxruntime as ort
import tritonclient.grpc as tgrpc
import tritonclient.http as thttp

HTTP, GRPC, METRICS = "127.0.0.1:8000", "127.0.0.1:8001", "127.0.0.1:8002"
# Words in the kernel names of each architecture (kernels/): the image's binary picks only its own.
KERNELS = {"amd64": ("avx512", "avx2"), "arm64": ("neon", "sve", "mmla", "sdot")}


def feeds_for(session):
    rng = np.random.default_rng(7)
    feeds = {}
    for i in session.get_inputs():
        if i.type == "tensor(int64)":
            shape = [2, 9]
            feeds[i.name] = (rng.integers(0, 100, shape) if i.name == "input_ids" else
                             np.ones(shape, np.int64) if i.name == "attention_mask" else np.zeros(shape, np.int64))
        else:
            shape = [2 if d is None or isinstance(d, str) else d for d in i.shape]
            shape[0] = 2
            feeds[i.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def close(got, want):
    assert got.shape == want.shape, (got.shape, want.shape)
    err = float(np.max(np.abs(got - want)))
    assert err <= 1e-4 * max(1.0, float(np.max(np.abs(want)))), f"max |diff| {err}"


def main(models_dir, arch):
    http = thttp.InferenceServerClient(HTTP)
    grpc = tgrpc.InferenceServerClient(GRPC)
    assert http.is_server_live() and http.is_server_ready(), "HTTP health"
    assert grpc.is_server_live() and grpc.is_server_ready(), "gRPC health"
    for model in sorted(p.name for p in Path(models_dir).iterdir() if p.is_dir()):
        path = f"{models_dir}/{model}/1/model.onnx"
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        feeds = feeds_for(session)
        want = session.run(None, feeds)
        outputs = [o.name for o in session.get_outputs()]
        dtype = {np.dtype(np.int64): "INT64", np.dtype(np.float32): "FP32"}
        for binary in (False, True):
            inputs = []
            for name, value in feeds.items():
                inp = thttp.InferInput(name, list(value.shape), dtype[value.dtype])
                inp.set_data_from_numpy(value, binary_data=binary)
                inputs.append(inp)
            result = http.infer(model, inputs, outputs=[thttp.InferRequestedOutput(o, binary_data=binary)
                                                        for o in outputs])
            for o, w in zip(outputs, want):
                close(result.as_numpy(o), w)
        inputs = []
        for name, value in feeds.items():
            inp = tgrpc.InferInput(name, list(value.shape), dtype[value.dtype])
            inp.set_data_from_numpy(value)
            inputs.append(inp)
        result = grpc.infer(model, inputs)
        for o, w in zip(outputs, want):
            close(result.as_numpy(o), w)
        print(f"check_image: {model}: HTTP (JSON, binary) and gRPC outputs match ONNX Runtime")
    with urllib.request.urlopen(f"http://{METRICS}/metrics", timeout=10) as r:
        body = r.read()
    check = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True)
    assert check.returncode == 0, check.stdout + check.stderr
    text = body.decode()
    kernels = re.findall(r'^coreserve_kernel_info\{.*kernel="([^"]+)"', text, re.M)
    other = [w for a, words in KERNELS.items() if a != arch for w in words]
    assert kernels and any(w in k for k in kernels for w in KERNELS[arch]), kernels
    assert not any(w in k for k in kernels for w in other), kernels
    assert "coreserve_inference_count_total{" in text
    print(f"check_image: metrics pass promtool; kernels: {', '.join(sorted(set(kernels)))}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
