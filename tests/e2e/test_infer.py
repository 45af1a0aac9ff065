"""KServe v2 inference end to end: tritonclient over HTTP (binary tensors, its default) and gRPC (raw contents),
plain JSON over HTTP (flat and nested data), the per-model config.yaml, and every request error the front ends
refuse. ONNX Runtime running the same file is the numerical reference."""
import json
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as tgrpc
import tritonclient.http as thttp
from tritonclient.utils import InferenceServerException

from conftest import RunningServer, serve_copies, write_config
from http_util import get, get_json
from metrics_util import scrape, value

RTOL = 1e-4  # the runtime's agreement with ONNX Runtime: |diff| <= 1e-4 * max(1, |reference|)


def reference(path, feeds):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)


def assert_close(got, want, rtol=RTOL):
    assert got.shape == want.shape and got.dtype == want.dtype
    assert np.all(np.abs(got - want) <= rtol * np.maximum(1.0, np.abs(want))), np.max(np.abs(got - want))


def bert_feeds(batch, seq, seed=0):
    rng = np.random.default_rng(seed)
    mask = np.ones((batch, seq), np.int64)
    mask[0, seq // 2:] = 0  # a padded sentence
    return {"input_ids": rng.integers(0, 100, (batch, seq)).astype(np.int64), "attention_mask": mask,
            "token_type_ids": np.zeros((batch, seq), np.int64)}


def image_feeds(batch, seed=0):
    return {"pixel_values": np.random.default_rng(seed).standard_normal((batch, 3, 32, 32)).astype(np.float32)}


def http_inputs(feeds, binary=True):
    out = []
    for name, x in feeds.items():
        i = thttp.InferInput(name, list(x.shape), {np.float32: "FP32", np.int64: "INT64"}[x.dtype.type])
        i.set_data_from_numpy(x, binary_data=binary)
        out.append(i)
    return out


def grpc_inputs(feeds):
    out = []
    for name, x in feeds.items():
        i = tgrpc.InferInput(name, list(x.shape), {np.float32: "FP32", np.int64: "INT64"}[x.dtype.type])
        i.set_data_from_numpy(x)
        out.append(i)
    return out


@pytest.mark.parametrize("model,feeds", [("bert_tiny", bert_feeds(2, 16)), ("bert_tiny", bert_feeds(1, 7)),
                                         ("resnet_tiny", image_feeds(3))])
def test_tritonclient_http_and_grpc_match_onnxruntime(server, models_dir, model, feeds):
    want = reference(models_dir / model / "1" / "model.onnx", feeds)
    http = thttp.InferenceServerClient(server.http)
    for binary in (True, False):
        result = http.infer(model, http_inputs(feeds, binary),
                            outputs=[thttp.InferRequestedOutput("logits", binary_data=binary)])
        assert_close(result.as_numpy("logits"), want[0])
    result = tgrpc.InferenceServerClient(server.grpc).infer(model, grpc_inputs(feeds))
    assert_close(result.as_numpy("logits"), want[0])
    assert result.get_response().model_name == model and result.get_response().model_version == "1"


def post(server, model, body, headers=None):
    status, _, data = get(server.http, f"/v2/models/{model}/infer", method="POST",
                          body=json.dumps(body).encode() if isinstance(body, dict) else body)
    return status, json.loads(data) if data else None


def test_plain_json_flat_and_nested(server, models_dir):
    feeds = image_feeds(2, seed=3)
    want = reference(models_dir / "resnet_tiny" / "1" / "model.onnx", feeds)[0]
    x = feeds["pixel_values"]
    for data in (x.flatten().tolist(), x.tolist()):
        status, body = post(server, "resnet_tiny", {"id": "req-7", "inputs": [
            {"name": "pixel_values", "shape": list(x.shape), "datatype": "FP32", "data": data}]})
        assert status == 200, body
        assert body["id"] == "req-7" and body["model_name"] == "resnet_tiny" and body["model_version"] == "1"
        (out,) = body["outputs"]
        assert out["name"] == "logits" and out["datatype"] == "FP32" and out["shape"] == [2, 10]
        assert_close(np.array(out["data"], np.float32).reshape(2, 10), want)


def test_binary_extension_by_hand(server, models_dir):
    """Triton's binary tensor extension, spelled out: JSON header, then the raw bytes of each input."""
    feeds = image_feeds(1, seed=4)
    raw = feeds["pixel_values"].tobytes()
    header = json.dumps({"inputs": [{"name": "pixel_values", "shape": [1, 3, 32, 32], "datatype": "FP32",
                                     "parameters": {"binary_data_size": len(raw)}}],
                         "parameters": {"binary_data_output": True}}).encode()
    status, headers, data = get_with_headers(server, "resnet_tiny", header + raw,
                                             {"Inference-Header-Content-Length": str(len(header))})
    assert status == 200, data
    n = int(headers["Inference-Header-Content-Length"])
    meta = json.loads(data[:n])
    (out,) = meta["outputs"]
    assert out["parameters"]["binary_data_size"] == 40 and len(data) == n + 40
    got = np.frombuffer(data[n:], np.float32).reshape(1, 10)
    assert_close(got, reference(models_dir / "resnet_tiny" / "1" / "model.onnx", feeds)[0])


def get_with_headers(server, model, body, headers):
    import urllib.error
    import urllib.request
    req = urllib.request.Request(f"http://{server.http}/v2/models/{model}/infer", method="POST", data=body,
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def test_requested_outputs_and_unknown_names(server):
    x = image_feeds(1)["pixel_values"]
    good = {"name": "pixel_values", "shape": [1, 3, 32, 32], "datatype": "FP32", "data": x.flatten().tolist()}
    status, body = post(server, "resnet_tiny", {"inputs": [good], "outputs": [{"name": "logits"}]})
    assert status == 200 and [o["name"] for o in body["outputs"]] == ["logits"]
    status, body = post(server, "resnet_tiny", {"inputs": [good], "outputs": [{"name": "probs"}]})
    assert status == 400 and "no output 'probs'" in body["error"] and "logits" in body["error"]
    status, body = post(server, "resnet_tiny", {"inputs": [dict(good, name="image")]})
    assert status == 400 and "no input 'image'" in body["error"] and "pixel_values" in body["error"]


BAD_REQUESTS = [
    (b"{not json", "invalid JSON"),
    (b"[]", "must be a JSON object"),
    ({"inputs": "x"}, "'inputs' must be an array"),
    ({"inputs": [{"name": "pixel_values", "shape": [1, 3, 32, 32], "datatype": "FP33", "data": []}]},
     "unknown datatype 'FP33'"),
    ({"inputs": [{"name": "pixel_values", "shape": [1, 3, 32, 32], "datatype": "FP32", "data": [1.0, 2.0]}]},
     "2 values of data for shape [1,3,32,32]"),
    ({"inputs": [{"name": "pixel_values", "shape": [1, -3, 32, 32], "datatype": "FP32", "data": []}]},
     "is negative"),
    ({"inputs": [{"name": "pixel_values", "shape": [1 << 40, 1 << 40], "datatype": "FP32", "data": []}]},
     "byte limit"),
    ({"inputs": [{"name": "pixel_values", "shape": [1, 3, 32, 32], "datatype": "INT64", "data": [0] * 3072}]},
     "pixel_values"),  # the runtime names the input and both types
    ({"inputs": [{"name": "pixel_values", "shape": [1, 3, 16, 16], "datatype": "FP32", "data": [0.0] * 768}]},
     "pixel_values"),
    ({"inputs": [{"name": "pixel_values", "shape": [2], "datatype": "FP32", "data": [[[1.0]], [[2.0]]]}]},
     "nested deeper"),
    ({"inputs": [{"name": "pixel_values", "shape": [1, 3, 32, 32], "datatype": "FP32",
                  "parameters": {"binary_data_size": 12288}}]}, "bytes of binary data remain"),
    ({"inputs": []}, "missing input 'pixel_values'"),
]


@pytest.mark.parametrize("body,message", BAD_REQUESTS)
def test_bad_requests_get_400_and_the_server_keeps_serving(server, body, message):
    status, reply = post(server, "resnet_tiny", body)
    assert status == 400 and message in reply["error"], reply
    x = image_feeds(1)["pixel_values"]
    status, _ = post(server, "resnet_tiny", {"inputs": [
        {"name": "pixel_values", "shape": [1, 3, 32, 32], "datatype": "FP32", "data": x.flatten().tolist()}]})
    assert status == 200


def test_binary_byte_count_must_match(server):
    raw = b"\0" * 100
    header = json.dumps({"inputs": [{"name": "pixel_values", "shape": [1, 3, 32, 32], "datatype": "FP32",
                                     "parameters": {"binary_data_size": 100}}]}).encode()
    status, _, data = get_with_headers(server, "resnet_tiny", header + raw,
                                       {"Inference-Header-Content-Length": str(len(header))})
    assert status == 400 and b"100 bytes of data for shape [1,3,32,32]" in data


def test_unknown_model_and_grpc_errors(server):
    status, body = post(server, "nope", {"inputs": []})
    assert status == 404 and "nope" in body["error"]
    client = tgrpc.InferenceServerClient(server.grpc)
    with pytest.raises(InferenceServerException) as e:
        client.infer("nope", grpc_inputs(image_feeds(1)))
    assert e.value.status() == "StatusCode.NOT_FOUND"
    with pytest.raises(InferenceServerException) as e:
        bad = tgrpc.InferInput("pixel_values", [1, 3, 32, 32], "INT64")
        bad.set_data_from_numpy(np.zeros((1, 3, 32, 32), np.int64))
        client.infer("resnet_tiny", [bad])
    assert e.value.status() == "StatusCode.INVALID_ARGUMENT" and "pixel_values" in e.value.message()


def test_model_config_precision_and_limits(models_dir, tmp_path):
    """config.yaml per model: bf16 fastmath stays within its rounding of fp32; max_batch_size is enforced; a bad
    key makes only that model not ready, with the file and key in the reason."""
    s = serve_copies(models_dir, tmp_path, {"fast": ("bert_tiny", "precision: bf16\nthreads: 1\nmax_batch_size: 2\n"),
                                            "typo": ("bert_tiny", "precison: bf16\n")})
    try:
        assert "model fast version 1 loaded: 3 inputs, 1 outputs, precision bf16, 1 threads" in s.log()
        status, body = get_json(s.http, "/v2/models/typo")
        assert status == 400 and "typo/config.yaml" in body["error"] and "unknown key 'precison'" in body["error"]
        feeds = bert_feeds(2, 16)
        want = reference(models_dir / "bert_tiny" / "1" / "model.onnx", feeds)[0]
        got = thttp.InferenceServerClient(s.http).infer("fast", http_inputs(feeds)).as_numpy("logits")
        cos = np.sum(got * want) / np.linalg.norm(got) / np.linalg.norm(want)
        assert cos > 0.999 and not np.array_equal(got, want)  # bf16 products: close, not bit-identical
        with pytest.raises(InferenceServerException) as e:
            thttp.InferenceServerClient(s.http).infer("fast", http_inputs(bert_feeds(3, 8)))
        assert "batch size 3 exceeds the model's max_batch_size 2" in e.value.message()
    finally:
        assert s.stop() == 0, s.log()


def test_dynamic_batching_keeps_every_clients_outputs(models_dir, tmp_path):
    """Concurrent clients of a batching model (several requests are merged on the first dimension and split
    back): each gets the outputs of its own input, over HTTP and gRPC; Triton's priority and timeout parameters
    reach the scheduler."""
    s = serve_copies(models_dir, tmp_path, {"resnet_tiny": (
        "resnet_tiny", "max_batch_size: 8\ndynamic_batching:\n  max_queue_delay_us: 100000\n  preferred_batch_sizes: [4, 8]\n")})
    try:
        path = models_dir / "resnet_tiny" / "1" / "model.onnx"
        feeds = [image_feeds(1 + i % 2, seed=10 + i) for i in range(12)]
        want = [reference(path, f)[0] for f in feeds]
        http = thttp.InferenceServerClient(s.http, concurrency=12)
        pending = [http.async_infer("resnet_tiny", http_inputs(f)) for f in feeds]
        for p, w in zip(pending, want):
            assert_close(p.get_result().as_numpy("logits"), w)
        grpc_client = tgrpc.InferenceServerClient(s.grpc)
        done = []
        for i, f in enumerate(feeds):
            grpc_client.async_infer("resnet_tiny", grpc_inputs(f), lambda result, error: done.append((result, error)),
                                    request_id=str(i))
        deadline = time.monotonic() + 30
        while len(done) < len(feeds) and time.monotonic() < deadline:
            time.sleep(0.01)  # polling for the callbacks, not timing anything
        assert len(done) == len(feeds)
        for r, e in done:  # in completion order; the echoed id names the request
            assert e is None, e
            assert_close(r.as_numpy("logits"), want[int(r.get_response().id)])
        # 24 requests computed in fewer executions: some were batched (12 concurrent clients, a 100 ms window).
        m = {"model": "resnet_tiny", "version": "1"}
        executions = value(scrape(s), "coreserve_execution_count_total", **m)
        assert value(scrape(s), "coreserve_inference_count_total", **m) == 24
        assert executions < 24
        with pytest.raises(InferenceServerException) as e:
            thttp.InferenceServerClient(s.http).infer("resnet_tiny", http_inputs(feeds[0]), priority=3)
        assert "priority 3 requested, but model 'resnet_tiny' has no priority levels" in e.value.message()
        # The statistics extension and the Prometheus metrics count the same things: 24 successes of 36 rows in
        # all (12 requests of 1 or 2 rows, twice), in fewer executions, and one refused request.
        (st,) = thttp.InferenceServerClient(s.http).get_inference_statistics("resnet_tiny")["model_stats"]
        assert st["inference_count"] == 24 and st["execution_count"] == executions
        assert st["inference_stats"]["success"]["count"] == 24 and st["inference_stats"]["fail"]["count"] == 1
        assert sum(b["batch_size"] * b["compute_infer"]["count"] for b in st["batch_stats"]) == 36
        assert st["last_inference"] > 0
        families = scrape(s)
        assert value(families, "coreserve_batch_size_sum", **m) == 36
        assert value(families, "coreserve_batch_size_count", **m) == st["execution_count"]
        assert value(families, "coreserve_request_duration_seconds_count", **m) == 24
        assert value(families, "coreserve_inference_failure_total", reason="invalid_argument", **m) == 1
        assert value(families, "coreserve_pending_requests", **m) == 0
        every = thttp.InferenceServerClient(s.http).get_inference_statistics()["model_stats"]
        assert [m["name"] for m in every] == ["resnet_tiny"]
        (g,) = tgrpc.InferenceServerClient(s.grpc).get_inference_statistics("resnet_tiny", as_json=True)["model_stats"]
        assert int(g["inference_count"]) == 24 and int(g["execution_count"]) == st["execution_count"]
        assert int(g["inference_stats"]["fail"]["count"]) == 1
    finally:
        assert s.stop() == 0, s.log()


def test_dynamic_batching_pads_sequences_of_different_lengths(models_dir, tmp_path):
    """Concurrent clients of a batching transformer with sentences of different lengths: the batcher pads them to
    the longest and each client gets ONNX Runtime's outputs for its own sentence, in fewer executions."""
    s = serve_copies(models_dir, tmp_path, {"bert_tiny": (
        "bert_tiny", "max_batch_size: 8\ndynamic_batching:\n  max_queue_delay_us: 200000\n  preferred_batch_sizes: [8]\n")})
    try:
        path = models_dir / "bert_tiny" / "1" / "model.onnx"
        lengths = [3, 7, 12, 5, 12, 9, 1, 16]
        feeds = [bert_feeds(1, seq, seed=seq + i) for i, seq in enumerate(lengths)]
        want = [reference(path, f)[0] for f in feeds]
        http = thttp.InferenceServerClient(s.http, concurrency=len(feeds))
        pending = [http.async_infer("bert_tiny", http_inputs(f)) for f in feeds]
        for p, w in zip(pending, want):
            assert_close(p.get_result().as_numpy("logits"), w)
        m = {"model": "bert_tiny", "version": "1"}
        assert value(scrape(s), "coreserve_inference_count_total", **m) == len(feeds)
        assert value(scrape(s), "coreserve_execution_count_total", **m) < len(feeds)
        assert "batches pad input_ids, attention_mask, token_type_ids to the longest sequence" in s.log()
    finally:
        assert s.stop() == 0, s.log()


def test_dynamic_batching_config_errors(models_dir, tmp_path):
    s = serve_copies(models_dir, tmp_path, {"m": ("resnet_tiny", "dynamic_batching: {max_queue_delay_us: 100}\n")})
    try:
        status, body = get_json(s.http, "/v2/models/m")
        assert status == 400 and "dynamic_batching: needs max_batch_size > 0" in body["error"]
    finally:
        assert s.stop() == 0, s.log()


def test_model_config_extension_over_http_and_grpc(server, models_dir, tmp_path):
    """Triton's model configuration, as its clients read it: the same fields over both protocols; with
    max_batch_size > 0 the dims leave out the batch dimension."""
    http_cfg = thttp.InferenceServerClient(server.http).get_model_config("resnet_tiny")
    grpc_cfg = tgrpc.InferenceServerClient(server.grpc).get_model_config("resnet_tiny", as_json=True)["config"]
    for cfg in (http_cfg, grpc_cfg):
        assert cfg["name"] == "resnet_tiny" and cfg.get("max_batch_size", 0) == 0
        (inp,) = cfg["input"]
        assert inp["name"] == "pixel_values" and inp["data_type"] == "TYPE_FP32"
        assert [int(d) for d in inp["dims"]] == [-1, 3, 32, 32]
        assert cfg["parameters"]["precision"]["string_value"] == "fp32"
    with pytest.raises(InferenceServerException) as e:
        tgrpc.InferenceServerClient(server.grpc).get_model_config("nope")
    assert e.value.status() == "StatusCode.NOT_FOUND"
    s = serve_copies(models_dir, tmp_path, {"m": (
        "resnet_tiny", "max_batch_size: 4\ndynamic_batching: {preferred_batch_sizes: [2, 4]}\n")})
    try:
        cfg = thttp.InferenceServerClient(s.http).get_model_config("m")
        assert cfg["max_batch_size"] == 4 and cfg["input"][0]["dims"] == [3, 32, 32]
        assert cfg["output"][0]["dims"] == [10]
        assert cfg["dynamic_batching"]["preferred_batch_size"] == [2, 4]
        grpc_cfg = tgrpc.InferenceServerClient(s.grpc).get_model_config("m", as_json=True)["config"]
        assert [int(d) for d in grpc_cfg["input"][0]["dims"]] == [3, 32, 32]
        assert grpc_cfg["dynamic_batching"]["preferred_batch_size"] == [2, 4]
    finally:
        assert s.stop() == 0, s.log()


def test_request_size_limit(models_dir, tmp_path):
    """Bodies over max_request_bytes get 413 before they are read — also a 2 GB Content-Length announced with no
    body at all — and the server keeps serving."""
    import socket
    config = tmp_path / "limited.yaml"
    config.write_text(f"model_repository: [{models_dir}]\nmax_request_bytes: 20000\n")
    s = RunningServer(config)
    try:
        x = image_feeds(1)["pixel_values"]
        big = {"inputs": [{"name": "pixel_values", "shape": [1, 3, 32, 32], "datatype": "FP32",
                           "data": x.flatten().tolist()}]}  # ~60 KB of JSON
        status, _ = post(s, "resnet_tiny", big)
        assert status == 413
        host, port = s.http.split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"POST /v2/models/resnet_tiny/infer HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 2147483648\r\n\r\n")
            assert sock.recv(64).startswith(b"HTTP/1.1 413")
        small = thttp.InferenceServerClient(s.http).infer("resnet_tiny", http_inputs(image_feeds(1)))
        assert small.as_numpy("logits").shape == (1, 10)
    finally:
        assert s.stop() == 0, s.log()


def test_version_policy_serves_several_versions(models_dir, tmp_path):
    """version_policy {latest: 2} over versions 1-3 of different models: 3 and 2 are served, each answering with
    its own model over HTTP and gRPC; a request without a version goes to the newest; version 1 is not served."""
    repo = tmp_path / "repo"
    sources = {1: "bert_tiny", 2: "resnet_tiny", 3: "resnet_tiny"}
    for version, source in sources.items():
        (repo / "m" / str(version)).mkdir(parents=True)
        (repo / "m" / str(version) / "model.onnx").write_bytes((models_dir / source / "1" / "model.onnx").read_bytes())
    (repo / "m" / "config.yaml").write_text("version_policy: {latest: 2}\n")
    s = RunningServer(write_config(tmp_path / "server.yaml", [repo]))
    try:
        http = thttp.InferenceServerClient(s.http)
        grpc_client = tgrpc.InferenceServerClient(s.grpc)
        assert http.get_model_metadata("m")["versions"] == ["3", "2"]
        assert list(grpc_client.get_model_metadata("m").versions) == ["3", "2"]
        feeds = image_feeds(2, seed=5)
        want = reference(models_dir / "resnet_tiny" / "1" / "model.onnx", feeds)[0]
        for version in ("2", "3", ""):
            assert_close(http.infer("m", http_inputs(feeds), model_version=version).as_numpy("logits"), want)
            assert_close(grpc_client.infer("m", grpc_inputs(feeds), model_version=version).as_numpy("logits"), want)
        with pytest.raises(InferenceServerException) as e:
            http.infer("m", http_inputs(feeds), model_version="1")
        assert "model 'm' has no served version '1'" in e.value.message()
        assert http.get_model_config("m")["version_policy"] == {"latest": {"num_versions": 2}}
        assert http.is_model_ready("m", "2") and http.is_model_ready("m", "3") and not http.is_model_ready("m", "1")
        families = scrape(s)
        assert value(families, "coreserve_inference_count_total", model="m", version="2") == 2
        assert value(families, "coreserve_inference_count_total", model="m", version="3") == 4  # and unversioned
    finally:
        assert s.stop() == 0, s.log()


def test_core_groups(models_dir, tmp_path):
    """groups: one instance per core group, pinned: Triton's model configuration counts the instances, concurrent
    clients get correct outputs, the per-instance metrics add up to the model's executions and name each group's
    CPUs; a layout needing more cores than the server may use leaves the model unready, saying why."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("needs two CPUs")
    s = serve_copies(models_dir, tmp_path, {
        "m": ("resnet_tiny", "groups: [1, 1]\n"),
        "big": ("resnet_tiny", f"groups: [{len(cpus)}, 1]\n")})
    try:
        http = thttp.InferenceServerClient(s.http, concurrency=8)
        assert http.get_model_config("m")["instance_group"] == [{"kind": "KIND_CPU", "count": 2}]
        feeds = [image_feeds(1, seed=i) for i in range(16)]
        want = [reference(models_dir / "resnet_tiny" / "1" / "model.onnx", f)[0] for f in feeds]
        pending = [http.async_infer("m", http_inputs(f)) for f in feeds]
        for p, w in zip(pending, want):
            assert_close(p.get_result().as_numpy("logits"), w)
        families = scrape(s)
        m = {"model": "m", "version": "1"}
        runs = [value(families, "coreserve_instance_execution_count_total", instance=str(i), cpus=str(cpus[i]), **m)
                for i in range(2)]
        assert sum(runs) == value(families, "coreserve_execution_count_total", **m) == 16
        assert sum(value(families, "coreserve_instance_busy_seconds_total", instance=str(i), **m) for i in range(2)) > 0
        assert value(families, "coreserve_instance_inflight_requests", instance="1", **m) == 0
        status, body = get_json(s.http, "/v2/models/big")
        assert status == 400 and f"groups [{len(cpus)}, 1] need {len(cpus) + 1} cores, but the server may use" in body["error"]
    finally:
        assert s.stop() == 0, s.log()


def test_pipeline_stages(models_dir, tmp_path):
    """pipeline: {stages: 2}: bert_tiny cut into two one-core stages serves concurrent clients with ONNX Runtime's
    outputs, Triton's configuration counts one instance, each stage's metrics count every request and say which
    CPU it runs on, and promtool still accepts the exposition."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("needs two CPUs")
    s = serve_copies(models_dir, tmp_path, {"m": ("bert_tiny", "pipeline: {stages: 2}\n")})
    try:
        http = thttp.InferenceServerClient(s.http, concurrency=6)
        assert http.get_model_config("m")["instance_group"] == [{"kind": "KIND_CPU", "count": 1}]
        feeds = [bert_feeds(1 + i % 2, 5 + i, seed=i) for i in range(12)]
        want = [reference(models_dir / "bert_tiny" / "1" / "model.onnx", f)[0] for f in feeds]
        pending = [http.async_infer("m", http_inputs(f)) for f in feeds]
        for p, w in zip(pending, want):
            assert_close(p.get_result().as_numpy("logits"), w)
        families = scrape(s)
        m = {"model": "m", "version": "1", "instance": "0"}
        for stage in range(2):
            assert value(families, "coreserve_stage_execution_count_total", stage=str(stage), cpus=str(cpus[stage]), **m) == 12
            assert value(families, "coreserve_stage_queue_depth", stage=str(stage), **m) == 0
        assert "pipeline of 2 stages" in s.log()
        status, _, body = get(s.metrics, "/metrics")
        check = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, timeout=60)
        assert status == 200 and check.returncode == 0, check.stdout.decode() + check.stderr.decode()
    finally:
        assert s.stop() == 0, s.log()


def test_models_get_cores_of_their_own(models_dir, tmp_path):
    """Two models with one-core groups get different CPUs; a third finds none free and is unready, naming the
    models that hold them; with share_cores: true it loads on the first CPU anyway."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) != 2:
        pytest.skip("written for two CPUs")
    s = serve_copies(models_dir, tmp_path, {
        "a": ("resnet_tiny", "groups: [1]\n"), "b": ("resnet_tiny", "groups: [1]\n"),
        "c": ("resnet_tiny", "groups: [1]\n"), "d": ("resnet_tiny", "groups: [1]\nshare_cores: true\n")})
    try:
        families = scrape(s)
        held = {m: next(x.labels["cpus"] for x in families["coreserve_instance_execution_count"].samples
                        if x.labels["model"] == m) for m in ("a", "b", "d")}
        assert held["a"] != held["b"] and {held["a"], held["b"]} == {str(c) for c in cpus}
        assert held["d"] == str(cpus[0])
        status, body = get_json(s.http, "/v2/models/c")
        assert status == 400 and "other models' groups hold the rest: a (CPUs" in body["error"], body
    finally:
        assert s.stop() == 0, s.log()


def thread_names(pid):
    """The names of the process's threads; a thread that ends while they are read (a finished load's) is left out."""
    names = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            names.append((task / "comm").read_text().strip())
        except FileNotFoundError:
            pass
    return names


def test_models_without_a_layout_share_one_pool(models_dir, tmp_path):
    """Models with no threads, groups or pipeline share one pool of every CPU and take turns on it: three such
    models run one pool's workers (CPUs - 1, the caller being the last) beside their three instance threads,
    read from the threads' names; and concurrent clients of all three get ONNX Runtime's outputs."""
    three = serve_copies(models_dir, tmp_path, {f"m{i}": ("bert_tiny", None) for i in range(3)})
    try:
        names = thread_names(three.proc.pid)
        assert names.count("cs-instance") == 3, names
        assert names.count("cs-pool") == len(os.sched_getaffinity(0)) - 1, names
        feeds = bert_feeds(2, 12)
        want = reference(models_dir / "bert_tiny" / "1" / "model.onnx", feeds)[0]

        def client(model):
            c = tgrpc.InferenceServerClient(three.grpc)
            return [c.infer(model, grpc_inputs(feeds)).as_numpy("logits") for _ in range(8)]
        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(client, ["m0", "m1", "m2"] * 2))
        for outputs in results:
            for got in outputs:
                assert_close(got, want)
    finally:
        assert three.stop() == 0, three.log()


def test_models_without_a_layout_keep_off_the_cores_layouts_hold(models_dir, tmp_path):
    """Beside a model whose one-core group holds a CPU, the models without a layout share the other CPU only:
    their pool has one thread (no worker) and their instances report that CPU; they still compute correctly."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) != 2:
        pytest.skip("written for two CPUs")
    s = serve_copies(models_dir, tmp_path, {"g": ("bert_tiny", "groups: [1]\n"), "m0": ("bert_tiny", None),
                                            "m1": ("bert_tiny", None)})
    try:
        names = thread_names(s.proc.pid)
        assert names.count("cs-pool") == 0 and names.count("cs-instance") == 3, names
        families = scrape(s)
        held = {x.labels["model"]: x.labels["cpus"] for x in families["coreserve_instance_execution_count"].samples}
        assert held["m0"] == held["m1"] and {held["g"], held["m0"]} == {str(c) for c in cpus}, held
        feeds = bert_feeds(1, 9)
        want = reference(models_dir / "bert_tiny" / "1" / "model.onnx", feeds)[0]
        for model in ("g", "m0", "m1"):
            assert_close(tgrpc.InferenceServerClient(s.grpc).infer(model, grpc_inputs(feeds)).as_numpy("logits"), want)
        assert "models without a layout share 1 CPU(s)" in s.log()
    finally:
        assert s.stop() == 0, s.log()
