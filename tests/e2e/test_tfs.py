"""TensorFlow Serving's REST API over the served ONNX models, with plain HTTP and JSON (as TF Serving's own
clients and curl use it), against ONNX Runtime on the same files."""
import json
import subprocess

import numpy as np
import onnxruntime as ort
import pytest

from http_util import get

RTOL = 1e-4


def reference(models_dir, model, feeds):
    path = models_dir / model / "1" / "model.onnx"
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)[0]


def predict(server, path, body):
    status, _, data = get(server.http, path, method="POST", body=json.dumps(body).encode())
    return status, json.loads(data)


def assert_close(got, want):
    got = np.asarray(got, dtype=want.dtype)
    assert got.shape == want.shape
    assert np.all(np.abs(got - want) <= RTOL * np.maximum(1.0, np.abs(want)))


def bert_feeds(batch, seq, seed=1):
    rng = np.random.default_rng(seed)
    return {"input_ids": rng.integers(0, 100, (batch, seq)).astype(np.int64),
            "attention_mask": np.ones((batch, seq), np.int64),
            "token_type_ids": np.zeros((batch, seq), np.int64)}


def test_row_format_several_inputs(server, models_dir):
    feeds = bert_feeds(3, 8)
    instances = [{name: x[i].tolist() for name, x in feeds.items()} for i in range(3)]
    status, body = predict(server, "/v1/models/bert_tiny:predict", {"instances": instances})
    assert status == 200, body
    assert_close(body["predictions"], reference(models_dir, "bert_tiny", feeds))


def test_row_format_one_input_and_columnar(server, models_dir):
    x = np.random.default_rng(2).standard_normal((2, 3, 32, 32)).astype(np.float32)
    want = reference(models_dir, "resnet_tiny", {"pixel_values": x})
    status, body = predict(server, "/v1/models/resnet_tiny/versions/1:predict", {"instances": x.tolist()})
    assert status == 200, body
    assert_close(body["predictions"], want)
    status, body = predict(server, "/v1/models/resnet_tiny:predict", {"inputs": x.tolist()})
    assert status == 200 and set(body) == {"outputs"}
    assert_close(body["outputs"], want)
    feeds = bert_feeds(2, 5)
    status, body = predict(server, "/v1/models/bert_tiny:predict",
                           {"signature_name": "serving_default", "inputs": {k: v.tolist() for k, v in feeds.items()}})
    assert status == 200, body
    assert_close(body["outputs"], reference(models_dir, "bert_tiny", feeds))


def test_status_and_metadata(server):
    status, _, data = get(server.http, "/v1/models/bert_tiny")
    (version,) = json.loads(data)["model_version_status"]
    assert status == 200 and version["version"] == "1" and version["state"] == "AVAILABLE"
    status, _, data = get(server.http, "/v1/models/bert_tiny/metadata")
    sig = json.loads(data)["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert status == 200 and sig["inputs"]["input_ids"]["dtype"] == "DT_INT64"
    assert [d["size"] for d in sig["outputs"]["logits"]["tensor_shape"]["dim"]] == ["-1", "2"]


@pytest.mark.parametrize("path,body,code,message", [
    ("/v1/models/resnet_tiny:predict", {"instances": [1.0], "inputs": [1.0]}, 400, "exactly one of"),
    ("/v1/models/resnet_tiny:predict", {"inputs": [[1.0, 2.0], [3.0]]}, 400, "ragged nesting"),
    ("/v1/models/resnet_tiny:predict", {"inputs": {"image": [1.0]}}, 400, "no input 'image'"),
    ("/v1/models/bert_tiny:predict", {"instances": [[1, 2]]}, 400, "must be an object of the model's inputs"),
    ("/v1/models/bert_tiny:predict", {"inputs": {"input_ids": [[0.5]], "attention_mask": [[1]],
                                                 "token_type_ids": [[0]]}}, 400, "is not an integer"),
    ("/v1/models/resnet_tiny:predict", {"inputs": [[1.0]], "signature_name": "other"}, 400, "serving_default"),
    ("/v1/models/resnet_tiny/versions/9:predict", {"inputs": [1.0]}, 404, "no served version '9'"),
    ("/v1/models/nope:predict", {"inputs": [1.0]}, 404, "unknown model 'nope'"),
])
def test_errors(server, path, body, code, message):
    status, reply = predict(server, path, body)
    assert status == code and message in reply["error"], reply


def test_curl_json_and_tf_serving_forms(server, models_dir):
    """The JSON forms as a user types them with curl: a KServe v2 infer and a TF Serving :predict (rows), both
    matching ONNX Runtime, and an error answered as JSON with its status."""
    x = np.random.default_rng(11).standard_normal((1, 3, 32, 32)).astype(np.float32)
    want = ort.InferenceSession(str(models_dir / "resnet_tiny" / "1" / "model.onnx"),
                                providers=["CPUExecutionProvider"]).run(None, {"pixel_values": x})[0]

    def curl(path, body):
        r = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", "-H", "Content-Type: application/json",
                            "-d", json.dumps(body), f"http://{server.http}{path}"],
                           capture_output=True, text=True, timeout=60)
        text, code = r.stdout.rsplit("\n", 1)
        return int(code), json.loads(text)

    code, v2 = curl("/v2/models/resnet_tiny/infer", {"inputs": [
        {"name": "pixel_values", "datatype": "FP32", "shape": list(x.shape), "data": x.ravel().tolist()}]})
    assert code == 200
    got = np.array(v2["outputs"][0]["data"], np.float32).reshape(v2["outputs"][0]["shape"])
    assert np.abs(got - want).max() <= 1e-4 * max(1.0, float(np.abs(want).max()))
    code, tfs = curl("/v1/models/resnet_tiny:predict", {"instances": x.tolist()})
    assert code == 200
    assert np.abs(np.array(tfs["predictions"], np.float32) - want).max() <= 1e-4 * max(1.0, float(np.abs(want).max()))
    code, err = curl("/v1/models/resnet_tiny:predict", {"instances": [[1, 2]]})
    assert code == 400 and "error" in err
