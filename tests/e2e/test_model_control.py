"""The repository extension (index, load, unload) and polling: a reload under load loses no request and
switches to the new version; a failed reload keeps the old version serving and says why; unloading a model
leaves the server ready; the API is refused when model control is off."""
import json
import secrets
import shutil
import threading

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import tritonclient.grpc as tgrpc
import tritonclient.http as thttp
from onnx import numpy_helper
from tritonclient.utils import InferenceServerException

from conftest import RunningServer
from http_util import get, get_json


def scaled_copy(src, dst, scale):
    """`src` with its last node's weights scaled: the same inputs and outputs, other logits."""
    m = onnx.load(str(src))
    w = next(i for i in m.graph.initializer if i.name == m.graph.node[-1].input[1])
    w.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(w) * scale, w.name))
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(m, str(dst))


def reference(path, x):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"pixel_values": x})[0]


def infer(client, x):
    i = thttp.InferInput("pixel_values", list(x.shape), "FP32")
    i.set_data_from_numpy(x)
    return client.infer("m", [i]).as_numpy("logits")


def close(a, b):
    return a.shape == b.shape and np.all(np.abs(a - b) <= 1e-4 * np.maximum(1.0, np.abs(b)))


# The bearer token the tests' servers read from their token file (model control needs one).
TOKEN = "test-token-" + secrets.token_hex(16)
AUTH = {"Authorization": f"Bearer {TOKEN}"}
GRPC_AUTH = {"authorization": f"Bearer {TOKEN}"}  # gRPC metadata keys are lower case


def post(server, path, body=b"", headers=AUTH):
    status, _, data = get(server.http, path, method="POST", body=body, headers=headers)
    return status, json.loads(data) if data else None


def start(tmp_path, mode, extra=""):
    config = tmp_path / "server.yaml"
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    control = "" if mode == "none" else f"model_control_token_file: {token}\n"
    config.write_text(f"model_repository: [{tmp_path / 'repo'}]\nmodel_control: {mode}\n{control}{extra}")
    return RunningServer(config)


def test_reload_under_load_and_failed_reload(models_dir, tmp_path):
    src = models_dir / "resnet_tiny" / "1" / "model.onnx"
    repo = tmp_path / "repo"
    (repo / "m" / "1").mkdir(parents=True)
    shutil.copy(src, repo / "m" / "1" / "model.onnx")
    shutil.copytree(models_dir / "bert_tiny", repo / "bert_tiny")
    s = start(tmp_path, "explicit")
    try:
        x = np.random.default_rng(5).standard_normal((1, 3, 32, 32)).astype(np.float32)
        v1 = reference(src, x)
        status, index = post(s, "/v2/repository/index")
        assert status == 200 and [(m["name"], m["version"], m["state"]) for m in index] == [
            ("bert_tiny", "1", "READY"), ("m", "1", "READY")]

        # Requests keep flowing while version 2 is loaded: none fails, each gets version 1's or 2's answer.
        scaled_copy(src, repo / "m" / "2" / "model.onnx", 2.0)
        v2 = reference(repo / "m" / "2" / "model.onnx", x)
        results, errors, stop = [], [], threading.Event()

        def load_loop():
            client = thttp.InferenceServerClient(s.http)
            while not stop.is_set():
                try:
                    results.append(infer(client, x))
                except Exception as e:  # noqa: BLE001 -- every failure is recorded and asserted on
                    errors.append(e)

        worker = threading.Thread(target=load_loop)
        worker.start()
        while len(results) < 20 and not errors:
            pass
        status, body = post(s, "/v2/repository/models/m/load")
        after = len(results)
        while len(results) < after + 20 and not errors:
            pass
        stop.set()
        worker.join()
        assert status == 200, body
        assert not errors, errors
        assert all(close(r, v1) or close(r, v2) for r in results)
        assert close(results[-1], v2) and any(close(r, v1) for r in results)
        assert get_json(s.http, "/v2/models/m")[1]["versions"] == ["2"]

        # A version 3 that does not load: the call says why, version 2 keeps serving.
        (repo / "m" / "3").mkdir()
        (repo / "m" / "3" / "model.onnx").write_bytes(b"not a model")
        status, body = post(s, "/v2/repository/models/m/load")
        assert status == 400 and "failed to load (version 2 keeps serving)" in body["error"]
        assert close(infer(thttp.InferenceServerClient(s.http), x), v2)
        assert get(s.http, "/v2/health/ready")[0] == 200

        # Unload: the model stops serving, the server stays ready; load brings it back.
        assert post(s, "/v2/repository/models/bert_tiny/unload")[0] == 200
        status, index = post(s, "/v2/repository/index", b'{"ready": true}')
        assert [m["name"] for m in index] == ["m"]
        assert get(s.http, "/v2/models/bert_tiny/ready")[0] == 400
        assert get(s.http, "/v2/health/ready")[0] == 200
        with pytest.raises(InferenceServerException) as e:
            thttp.InferenceServerClient(s.http).infer("bert_tiny", [])
        assert "unloaded" in e.value.message()
        assert post(s, "/v2/repository/models/bert_tiny/load")[0] == 200
        assert get(s.http, "/v2/models/bert_tiny/ready")[0] == 200

        # Names that are not model folders.
        assert post(s, "/v2/repository/models/nope/load")[0] == 404
        status, body = post(s, "/v2/repository/models/..hidden/load")
        assert status == 400 and "is not a model name" in body["error"]
    finally:
        assert s.stop() == 0, s.log()


def test_polling_picks_up_a_new_version(models_dir, tmp_path):
    src = models_dir / "resnet_tiny" / "1" / "model.onnx"
    (tmp_path / "repo" / "m" / "1").mkdir(parents=True)
    shutil.copy(src, tmp_path / "repo" / "m" / "1" / "model.onnx")
    s = start(tmp_path, "poll", "model_poll_seconds: 0.2\n")
    try:
        scaled_copy(src, tmp_path / "repo" / "m" / "2" / "model.onnx", 3.0)
        with s._cv:  # wait for the poller's log line, not for a time
            assert s._cv.wait_for(lambda: "model m version 2 loaded" in "".join(s.lines), timeout=30), s.log()
        assert get_json(s.http, "/v2/models/m")[1]["versions"] == ["2"]
    finally:
        assert s.stop() == 0, s.log()


def test_model_control_off_by_default(server):
    status, body = post(server, "/v2/repository/models/bert_tiny/load")
    assert status == 400 and "model control is disabled" in body["error"]
    status, index = post(server, "/v2/repository/index")
    assert status == 200 and {m["name"] for m in index} == {"bert_tiny", "resnet_tiny"}
    status, body = post(server, "/v2/repository/index", b'{"ready": tru')
    assert status == 400 and "malformed index request: invalid JSON at offset" in body["error"]


def test_repository_extension_over_grpc(models_dir, tmp_path):
    """tritonclient's gRPC repository calls: the index (all, and ready only), an unload, a load of a changed
    model that then serves its new weights, and the errors for an unknown model and with model control off."""
    src = models_dir / "resnet_tiny" / "1" / "model.onnx"
    (tmp_path / "repo" / "m" / "1").mkdir(parents=True)
    shutil.copy(src, tmp_path / "repo" / "m" / "1" / "model.onnx")
    s = start(tmp_path, "explicit")
    try:
        client = tgrpc.InferenceServerClient(s.grpc)
        index = client.get_model_repository_index(headers=GRPC_AUTH, as_json=True)["models"]
        assert [(m["name"], m["version"], m["state"]) for m in index] == [("m", "1", "READY")]
        client.unload_model("m", headers=GRPC_AUTH)
        assert not client.is_model_ready("m")
        assert client.get_model_repository_index(headers=GRPC_AUTH, as_json=True).get("models", []) == [
            {"name": "m", "version": "1", "state": "UNAVAILABLE", "reason": "unloaded"}]
        ready_only = tgrpc.service_pb2.RepositoryIndexRequest(ready=True)
        assert list(client._client_stub.RepositoryIndex(ready_only, metadata=list(GRPC_AUTH.items())).models) == []
        scaled_copy(src, tmp_path / "repo" / "m" / "2" / "model.onnx", 2.0)
        client.load_model("m", headers=GRPC_AUTH)
        assert client.is_model_ready("m", "2")
        x = np.random.default_rng(3).standard_normal((1, 3, 32, 32)).astype(np.float32)
        assert close(infer(thttp.InferenceServerClient(s.http), x),
                     reference(tmp_path / "repo" / "m" / "2" / "model.onnx", x))
        with pytest.raises(InferenceServerException) as e:
            client.load_model("nope", headers=GRPC_AUTH)
        assert e.value.status() == "StatusCode.NOT_FOUND" and "no model repository holds a folder 'nope'" in e.value.message()
    finally:
        assert s.stop() == 0, s.log()
    off = start(tmp_path, "none")
    try:
        with pytest.raises(InferenceServerException) as e:
            tgrpc.InferenceServerClient(off.grpc).load_model("m")
        assert e.value.status() == "StatusCode.FAILED_PRECONDITION" and "model control is disabled" in e.value.message()
    finally:
        assert off.stop() == 0, off.log()


def test_model_control_needs_the_bearer_token(models_dir, tmp_path):
    """With model control on, index, load and unload over both protocols need `Authorization: Bearer <token>`
    with the token file's contents: missing or wrong tokens get 401 / UNAUTHENTICATED and change nothing; the
    file is read per request, so a rotated token takes effect at once; no token ever reaches the log."""
    src = models_dir / "resnet_tiny" / "1" / "model.onnx"
    (tmp_path / "repo" / "m" / "1").mkdir(parents=True)
    shutil.copy(src, tmp_path / "repo" / "m" / "1" / "model.onnx")
    s = start(tmp_path, "explicit")
    wrong = "Bearer " + "x" * len(TOKEN)
    try:
        for path in ("/v2/repository/index", "/v2/repository/models/m/unload", "/v2/repository/models/m/load"):
            status, headers, data = get(s.http, path, method="POST", body=b"")
            assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer"), (path, status)
            assert "Authorization: Bearer <token>" in json.loads(data)["error"]
            for value in (wrong, TOKEN, "Basic " + TOKEN, "Bearer"):
                status, body = post(s, path, headers={"Authorization": value})
                assert status == 401 and "error" in body, (path, value, status)
        # Nothing changed: the model still serves; inference never needs the token.
        assert get(s.http, "/v2/models/m/ready")[0] == 200
        x = np.random.default_rng(9).standard_normal((1, 3, 32, 32)).astype(np.float32)
        assert close(infer(thttp.InferenceServerClient(s.http), x), reference(src, x))

        client = tgrpc.InferenceServerClient(s.grpc)
        for headers in (None, {"authorization": wrong}):
            for call in (lambda: client.get_model_repository_index(headers=headers),
                         lambda: client.unload_model("m", headers=headers)):
                with pytest.raises(InferenceServerException) as e:
                    call()
                assert e.value.status() == "StatusCode.UNAUTHENTICATED", e.value
        assert client.is_model_ready("m")
        # The scheme is case-insensitive (RFC 7235); the token is not.
        assert post(s, "/v2/repository/models/m/unload", headers={"Authorization": "bearer " + TOKEN})[0] == 200
        assert not client.is_model_ready("m")
        client.load_model("m", headers=GRPC_AUTH)
        assert client.is_model_ready("m")

        # Rotation: the file's new token is the only one accepted from the next request on.
        rotated = "rotated-" + secrets.token_hex(16)
        (tmp_path / "token").write_text(rotated)
        assert post(s, "/v2/repository/index")[0] == 401
        assert post(s, "/v2/repository/index", headers={"Authorization": f"Bearer {rotated}"})[0] == 200
        with pytest.raises(InferenceServerException) as e:
            client.get_model_repository_index(headers=GRPC_AUTH)
        assert e.value.status() == "StatusCode.UNAUTHENTICATED"
        client.get_model_repository_index(headers={"authorization": f"Bearer {rotated}"})
        # An unreadable token file refuses every call (503 / UNAVAILABLE) rather than opening the API.
        (tmp_path / "token").unlink()
        status, body = post(s, "/v2/repository/index", headers={"Authorization": f"Bearer {rotated}"})
        assert status == 503 and "token file" in body["error"]
        assert get(s.http, "/v2/health/ready")[0] == 200
    finally:
        assert s.stop() == 0, s.log()
    log = s.log()
    assert "refused" in log
    assert TOKEN not in log and rotated not in log and "x" * len(TOKEN) not in log


@pytest.mark.parametrize("token, error", [
    (None, "needs model_control_token_file"),
    ("short\n", "is too short; it needs at least 16 characters"),
    ("  \n", "is empty"),
])
def test_model_control_refuses_to_start_without_a_usable_token(models_dir, tmp_path, token, error):
    (tmp_path / "repo").mkdir()
    config = tmp_path / "server.yaml"
    line = ""
    if token is not None:
        (tmp_path / "token").write_text(token)
        line = f"model_control_token_file: {tmp_path / 'token'}\n"
    config.write_text(f"model_repository: [{tmp_path / 'repo'}]\nmodel_control: explicit\n{line}")
    with pytest.raises(RuntimeError, match="exited at start") as e:
        RunningServer(config)
    assert error in str(e.value)


def test_reloads_under_grpc_load(models_dir, tmp_path):
    """gRPC answers hold the repository snapshot they started with, so after a reload the old model's last
    answer can drop its last reference on the old runner's own thread; the runner must then still go away
    cleanly (it once tried to join that thread and aborted the server). Several reloads under gRPC load: every
    answer is one version's, none fails, and the server exits 0."""
    src = models_dir / "resnet_tiny" / "1" / "model.onnx"
    repo = tmp_path / "repo"
    (repo / "m" / "1").mkdir(parents=True)
    shutil.copy(src, repo / "m" / "1" / "model.onnx")
    x = np.random.default_rng(4).standard_normal((1, 3, 32, 32)).astype(np.float32)
    answers = [reference(src, x)]
    s = start(tmp_path, "explicit")
    results, errors, stop = [], [], threading.Event()

    def load_loop():
        client = tgrpc.InferenceServerClient(s.grpc)
        while not stop.is_set():
            try:
                i = tgrpc.InferInput("pixel_values", list(x.shape), "FP32")
                i.set_data_from_numpy(x)
                results.append(client.infer("m", [i]).as_numpy("logits"))
            except Exception as e:  # noqa: BLE001 -- every failure is recorded and asserted on
                errors.append(e)

    workers = [threading.Thread(target=load_loop) for _ in range(4)]
    try:
        for w in workers:
            w.start()
        for version in range(2, 7):
            scaled_copy(src, repo / "m" / str(version) / "model.onnx", float(version))
            answers.append(reference(repo / "m" / str(version) / "model.onnx", x))
            before = len(results)
            assert post(s, "/v2/repository/models/m/load")[0] == 200
            while len(results) < before + 10 and not errors:
                pass
        stop.set()
        for w in workers:
            w.join()
        assert not errors, errors[:3]
        assert all(any(close(r, a) for a in answers) for r in results)
        # (A request queued on an old version may finish after newer ones: ask once more, after the last load.)
        i = tgrpc.InferInput("pixel_values", list(x.shape), "FP32")
        i.set_data_from_numpy(x)
        assert close(tgrpc.InferenceServerClient(s.grpc).infer("m", [i]).as_numpy("logits"), answers[-1])
    finally:
        stop.set()
        assert s.stop() == 0, s.log()
