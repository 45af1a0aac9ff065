"""Hostile and broken input over HTTP and gRPC (issue "Load tests and hardening", the bad-input suite), beyond the errors
test_infer.py covers: each gets a clear error of the documented kind, and afterwards the server answers a normal
request correctly. Checked against the server's own contract (HTTP status, {"error": ...} naming the problem)
and ONNX Runtime for the follow-up request."""
import http.client
import json
import math

import grpc
import numpy as np
import pytest
import tritonclient.grpc as tgrpc
from onnx import TensorProto, helper

from conftest import RunningServer, write_config
from http_util import get, get_json
from test_infer import assert_close, bert_feeds, reference

MODEL = "bert_tiny"


def infer_path(model=MODEL):
    return f"/v2/models/{model}/infer"


def assert_still_serving(server, models_dir):
    """A normal request after the bad one gets ONNX Runtime's answer."""
    feeds = bert_feeds(1, 6)
    body = {"inputs": [{"name": k, "shape": list(v.shape), "datatype": "INT64", "data": v.flatten().tolist()}
                       for k, v in feeds.items()]}
    status, reply = get_json(server.http, infer_path(), "POST", json.dumps(body).encode())
    assert status == 200, reply
    want = reference(models_dir / MODEL / "1" / "model.onnx", feeds)[0]
    assert_close(np.array(reply["outputs"][0]["data"], np.float32).reshape(want.shape), want)


def raw_request(server, method, path, headers, body=b""):
    """One request over a plain socket, so headers such as a false Content-Length go out as written."""
    host, port = server.http.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.putrequest(method, path, skip_accept_encoding=True)
    for k, v in headers.items():
        conn.putheader(k, v)
    conn.endheaders()
    if body:
        conn.send(body)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, json.loads(data) if data else None


@pytest.mark.parametrize("body,message", [
    (b'{"inputs": [{"name": "input_ids"', "invalid JSON"),                  # truncated
    (b"\xff\xfe{}", "invalid JSON"),                                         # not UTF-8 at all
    (b"[" * 200000 + b"]" * 200000, "must be a JSON object"),                # deeply nested arrays
    (b'{"a":' * 100000 + b"1" + b"}" * 100000, "'inputs' must be an array"),  # deeply nested objects
    (json.dumps({"inputs": [{"name": "input_ids", "datatype": "INT64", "shape": [2 ** 62, 2 ** 62, 4],
                             "data": [1]}]}).encode(), "byte limit"),        # element count beyond size_t
    (json.dumps({"inputs": [{"name": "input_ids", "datatype": "INT64", "shape": [10 ** 20],
                             "data": [1]}]}).encode(), "'shape' must hold integers"),  # beyond int64
    (b'{"inputs":[{"name":"input_ids","datatype":"BYTES","shape":[1],"data":["\xff\xfe"]}]}', "BYTES"),
])
def test_malformed_bodies_get_400(server, models_dir, body, message):
    status, reply = get_json(server.http, infer_path(), "POST", body)
    assert status == 400 and message in reply["error"], reply
    assert_still_serving(server, models_dir)


def test_a_huge_content_length_is_refused_before_reading(server, models_dir):
    status, reply = raw_request(server, "POST", infer_path(), {"Content-Length": str(2 ** 31),
                                                               "Content-Type": "application/json"}, b"{")
    assert status == 413 and "max_request_bytes" in reply["error"], reply
    assert_still_serving(server, models_dir)


@pytest.mark.parametrize("method,path", [
    ("GET", "/v2/nothing"), ("DELETE", "/v2/nothing"), ("POST", "/v2/models/..%2F..%2Fetc%2Fpasswd/infer"),
    ("GET", "/v2/models/a%2Fb"), ("GET", "/v2/models/../../etc/passwd"), ("POST", "/v2/models/%2e%2e/infer"),
])
def test_unknown_routes_and_model_names_get_404(server, models_dir, method, path):
    status, _, data = get(server.http, path, method=method, body=b"{}" if method != "GET" else None)
    assert status == 404, (status, data)
    assert "error" in json.loads(data)
    assert_still_serving(server, models_dir)


@pytest.mark.parametrize("method,path,allowed", [
    ("DELETE", f"/v2/models/{MODEL}", "GET, HEAD"), ("PUT", infer_path(), "POST"), ("GET", infer_path(), "POST"),
    ("POST", "/v2/health/ready", "GET, HEAD"), ("PATCH", "/v2/repository/index", "POST"),
    ("GET", f"/v1/models/{MODEL}:predict", "POST"),
])
def test_known_paths_with_another_method_get_405(server, models_dir, method, path, allowed):
    """RFC 9110: 405 names the methods the path takes in an Allow header."""
    status, headers, data = get(server.http, path, method=method, body=b"{}" if method != "GET" else None)
    assert status == 405, (status, data)
    assert headers["Allow"] == allowed
    assert f"method {method} is not allowed" in json.loads(data)["error"]
    assert_still_serving(server, models_dir)


def broken_models(repo):
    """A repository of broken models beside a good one: not ONNX at all, a graph with a cycle, a node reading a
    value nothing defines."""
    (repo / "not_onnx" / "1").mkdir(parents=True)
    (repo / "not_onnx" / "1" / "model.onnx").write_bytes(b"\x00\x01 this is not a protobuf \xff" * 50)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    cycle = helper.make_graph([helper.make_node("Add", ["x", "b"], ["a"]), helper.make_node("Relu", ["a"], ["b"]),
                               helper.make_node("Identity", ["a"], ["y"])], "cycle", [x], [y])
    missing = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "missing", [x], [y])
    for name, graph in (("cycle", cycle), ("missing_initializer", missing)):
        (repo / name / "1").mkdir(parents=True)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        (repo / name / "1" / "model.onnx").write_bytes(model.SerializeToString())


def test_broken_models_in_the_repository_fail_alone(models_dir, tmp_path):
    repo = tmp_path / "repo"
    broken_models(repo)
    (repo / MODEL / "1").mkdir(parents=True)
    (repo / MODEL / "1" / "model.onnx").write_bytes((models_dir / MODEL / "1" / "model.onnx").read_bytes())
    server = RunningServer(write_config(tmp_path / "server.yaml", [repo]))
    try:
        reasons = {}
        for name in ("not_onnx", "cycle", "missing_initializer"):
            status, reply = get_json(server.http, f"/v2/models/{name}")
            assert status == 400, reply
            reasons[name] = reply["error"]
            status, reply = get_json(server.http, infer_path(name), "POST", b'{"inputs": []}')
            assert status == 503 and "is not ready" in reply["error"], reply
            # Named by its place in the repository, never by the server's own path to it.
            assert f"{name}/1/model.onnx" in reply["error"] and str(tmp_path) not in reply["error"], reply
            assert str(tmp_path) in server.log()
        assert "not an ONNX model" in reasons["not_onnx"], reasons
        assert "is on a cycle" in reasons["cycle"], reasons
        assert "input 'w' is not a graph input, initializer or node output" in reasons["missing_initializer"], reasons
        assert_still_serving(server, models_dir)
    finally:
        assert server.stop() == 0, server.log()


def grpc_request(model=MODEL, shape=(1, 4), datatype="INT64", raw=None, names=("input_ids", "attention_mask",
                                                                                "token_type_ids")):
    """A ModelInferRequest built field by field (no client-side checks in the way); each input's bytes are `raw`,
    else ones for the shape (one value when the shape is negative or huge)."""
    request = tgrpc.service_pb2.ModelInferRequest(model_name=model)
    for name in names:
        t = request.inputs.add(name=name, datatype=datatype)
        t.shape.extend(shape)
    count = math.prod(shape) if min(shape) >= 0 and math.prod(shape) < 1 << 20 else 1
    for _ in names:
        request.raw_input_contents.append(raw if raw is not None else np.ones(count, np.int64).tobytes())
    return request


@pytest.mark.parametrize("request_args,code,message", [
    (dict(shape=(1, -4)), "INVALID_ARGUMENT", "is negative"),
    (dict(shape=(2 ** 62, 2 ** 62, 4)), "INVALID_ARGUMENT", "byte limit"),
    (dict(raw=b"\0" * 7), "INVALID_ARGUMENT", "7 bytes of data for shape [1,4] of INT64, which needs 32"),
    (dict(datatype="FP32", raw=np.ones(4, np.float32).tobytes()), "INVALID_ARGUMENT",
     "input 'input_ids': expected int64, got float32"),
    (dict(datatype="FP99"), "INVALID_ARGUMENT", "FP99"),
    (dict(names=("input_ids",)), "INVALID_ARGUMENT", "missing input 'attention_mask'"),
    (dict(model="../../etc/passwd"), "NOT_FOUND", "unknown model '../../etc/passwd'"),
    (dict(model="a/b"), "NOT_FOUND", "unknown model 'a/b'"),
])
def test_grpc_bad_requests_get_their_status(server, models_dir, request_args, code, message):
    stub = tgrpc.service_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(server.grpc))
    with pytest.raises(grpc.RpcError) as e:
        stub.ModelInfer(grpc_request(**request_args), timeout=30)
    assert e.value.code().name == code and message in e.value.details(), (e.value.code(), e.value.details())
    # and the next request, over gRPC, gets ONNX Runtime's answer
    feeds = bert_feeds(1, 6)
    client = tgrpc.InferenceServerClient(server.grpc)
    inputs = []
    for name, value in feeds.items():
        inp = tgrpc.InferInput(name, list(value.shape), "INT64")
        inp.set_data_from_numpy(value)
        inputs.append(inp)
    want = reference(models_dir / MODEL / "1" / "model.onnx", feeds)[0]
    assert_close(client.infer(MODEL, inputs).as_numpy("logits"), want)


def test_grpc_messages_are_bounded_by_max_request_bytes(models_dir, tmp_path):
    """gRPC takes messages up to max_request_bytes (past gRPC's own 4 MB default), and refuses larger ones with
    RESOURCE_EXHAUSTED before parsing them; the server keeps serving."""
    config = write_config(tmp_path / "server.yaml", [models_dir])
    config.write_text(config.read_text() + "max_request_bytes: 8388608\n")
    server = RunningServer(config)
    try:
        stub = tgrpc.service_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(server.grpc))
        rng = np.random.default_rng(5)

        def request(batch):
            pixels = rng.random((batch, 3, 32, 32), dtype=np.float32)
            r = tgrpc.service_pb2.ModelInferRequest(model_name="resnet_tiny")
            r.inputs.add(name="pixel_values", datatype="FP32", shape=pixels.shape)
            r.raw_input_contents.append(pixels.tobytes())
            return r, pixels

        big, pixels = request(512)  # 6.3 MB
        assert big.ByteSize() > 4 << 20
        reply = stub.ModelInfer(big, timeout=120)
        got = np.frombuffer(reply.raw_output_contents[0], np.float32).reshape(reply.outputs[0].shape)
        assert_close(got, reference(models_dir / "resnet_tiny" / "1" / "model.onnx", {"pixel_values": pixels})[0])
        too_big, _ = request(1024)  # 12.6 MB
        with pytest.raises(grpc.RpcError) as e:
            stub.ModelInfer(too_big, timeout=120)
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e.value.details()
        assert_still_serving(server, models_dir)
    finally:
        assert server.stop() == 0, server.log()
