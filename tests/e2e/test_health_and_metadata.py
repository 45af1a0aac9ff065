"""KServe v2 health and metadata over REST and gRPC, checked with Triton's own clients and the onnx package."""
import grpc
import onnx
import pytest
import tritonclient.grpc as tgrpc
import tritonclient.http as thttp
from tritonclient.utils import InferenceServerException

from http_util import get, get_json

V2_DTYPES = {onnx.TensorProto.FLOAT: "FP32", onnx.TensorProto.INT64: "INT64"}


def onnx_io(path):
    """(inputs, outputs) as v2 metadata, read from the file by the onnx package."""
    graph = onnx.load(str(path)).graph

    def meta(v):
        t = v.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim]
        return {"name": v.name, "datatype": V2_DTYPES[t.elem_type], "shape": shape}

    inits = {i.name for i in graph.initializer}
    return [meta(v) for v in graph.input if v.name not in inits], [meta(v) for v in graph.output]


def grpc_health(address, service=""):
    """grpc.health.v1.Health/Check with hand-encoded protobuf: field 1 (service) out, field 1 (status) back."""
    with grpc.insecure_channel(address) as channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check",
                                    request_serializer=lambda b: b, response_deserializer=lambda b: b)
        request = b"" if not service else b"\x0a" + bytes([len(service)]) + service.encode()
        reply = check(request, timeout=10)
        return {b"": "UNKNOWN", b"\x08\x01": "SERVING", b"\x08\x02": "NOT_SERVING"}[reply]


def test_rest_health(server):
    assert get(server.http, "/v2/health/live")[0] == 200
    status, _, body = get(server.http, "/v2/health/ready")
    assert status == 200 and body == b""


def test_triton_http_client(server):
    client = thttp.InferenceServerClient(server.http)
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("bert_tiny")
    assert client.is_model_ready("resnet_tiny", "1")
    assert not client.is_model_ready("resnet_tiny", "2")
    meta = client.get_server_metadata()
    assert meta["name"] == "coreserve"


def test_triton_grpc_client(server):
    client = tgrpc.InferenceServerClient(server.grpc)
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("bert_tiny")
    meta = client.get_server_metadata(as_json=True)
    assert meta["name"] == "coreserve"
    http_meta = get_json(server.http, "/v2")[1]
    assert meta["version"] == http_meta["version"]
    # The extensions each protocol announces are the same, and each is exercised by tests/e2e/test_infer.py
    # (model_repository by test_model_control.py).
    assert meta["extensions"] == http_meta["extensions"] == ["binary_tensor_data", "model_configuration",
                                                             "model_repository", "schedule_policy", "statistics"]


@pytest.mark.parametrize("model", ["bert_tiny", "resnet_tiny"])
def test_model_metadata_matches_the_onnx_file(server, models_dir, model):
    inputs, outputs = onnx_io(models_dir / model / "1" / "model.onnx")
    status, rest = get_json(server.http, f"/v2/models/{model}")
    assert status == 200
    assert rest == {"name": model, "versions": ["1"], "platform": "onnx_onnxv1", "inputs": inputs,
                    "outputs": outputs}
    assert get_json(server.http, f"/v2/models/{model}/versions/1")[1] == rest

    g = tgrpc.InferenceServerClient(server.grpc).get_model_metadata(model, as_json=True)
    assert g["name"] == model and g["versions"] == ["1"] and g["platform"] == "onnx_onnxv1"
    # protobuf's JSON form writes int64 as strings
    for got, want in zip(g["inputs"] + g["outputs"], inputs + outputs):
        assert got["name"] == want["name"] and got["datatype"] == want["datatype"]
        assert [int(d) for d in got["shape"]] == want["shape"]


def test_grpc_health_service(server):
    assert grpc_health(server.grpc) == "SERVING"
    assert grpc_health(server.grpc, "inference.GRPCInferenceService") == "SERVING"


def test_unknown_model_and_route_are_404_json(server):
    status, body = get_json(server.http, "/v2/models/nope")
    assert status == 404 and "unknown model 'nope'" in body["error"]
    status, body = get_json(server.http, "/v2/models/bert_tiny/versions/7/ready")
    assert status == 404 and "version '7'" in body["error"]
    status, body = get_json(server.http, "/v2/nothing/here")
    assert status == 404 and body["error"] == "no route for GET /v2/nothing/here"
    with pytest.raises(InferenceServerException) as e:
        tgrpc.InferenceServerClient(server.grpc).get_model_metadata("nope")
    assert e.value.status() == "StatusCode.NOT_FOUND" and "nope" in e.value.message()


def test_broken_model_keeps_server_live_but_not_ready(broken_server):
    s = broken_server
    assert get(s.http, "/v2/health/live")[0] == 200
    assert get(s.http, "/v2/health/ready")[0] == 400
    assert get(s.http, "/v2/models/garbage/ready")[0] == 400
    assert get(s.http, "/v2/models/bert_tiny/ready")[0] == 200
    status, body = get_json(s.http, "/v2/models/garbage")
    assert status == 400 and "not an ONNX model" in body["error"]
    client = tgrpc.InferenceServerClient(s.grpc)
    assert client.is_server_live() and not client.is_server_ready()
    assert not client.is_model_ready("garbage")
    assert grpc_health(s.grpc) == "NOT_SERVING"
    assert "model garbage version 1 failed to load" in s.log()
