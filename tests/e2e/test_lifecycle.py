"""Signals: SIGTERM and SIGINT stop the server cleanly with exit code 0."""
import signal
import threading

import grpc
import pytest
import tritonclient.http as thttp

from conftest import RunningServer, write_config
from http_util import get


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_exits_zero(models_dir, tmp_path, sig):
    s = RunningServer(write_config(tmp_path / "s.yaml", [models_dir]))
    assert get(s.http, "/v2/health/ready")[0] == 200
    assert s.stop(sig, timeout=30) == 0, s.log()
    log = s.log()
    assert f"received {sig.name}; shutting down" in log and log.rstrip().endswith("stopped")


def test_sigterm_while_clients_poll(models_dir, tmp_path):
    """Clients hammering HTTP and gRPC during SIGTERM: the server still exits 0 and never crashes mid-request.
    Every reply a client got before the listeners closed is a correct one."""
    s = RunningServer(write_config(tmp_path / "s.yaml", [models_dir]))
    stop = threading.Event()
    answers, errors = [], []

    def http_client():
        c = thttp.InferenceServerClient(s.http)
        while not stop.is_set():
            try:
                answers.append(c.is_server_live())
            except Exception:  # connection refused once the listener is closed
                return

    def grpc_client():
        with grpc.insecure_channel(s.grpc) as ch:
            live = ch.unary_unary("/inference.GRPCInferenceService/ServerLive",
                                  request_serializer=lambda b: b, response_deserializer=lambda b: b)
            while not stop.is_set():
                try:
                    answers.append(live(b"", timeout=5) == b"\x08\x01")
                except grpc.RpcError as e:
                    # Refusals while the listener closes: UNAVAILABLE (no connection) or CANCELLED (a call the
                    # transport had taken but no handler had started when gRPC shut down). Anything else is a bug.
                    if e.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
                        errors.append(e.code())
                    return

    threads = [threading.Thread(target=f) for f in (http_client, grpc_client, http_client)]
    for t in threads:
        t.start()
    # Wait until each kind of client has been answered at least a few times before signalling.
    deadline = threading.Event()
    for _ in range(1000):
        if len(answers) >= 20:
            break
        deadline.wait(0.01)
    code = s.stop(signal.SIGTERM)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert code == 0, s.log()
    assert len(answers) >= 20 and all(answers)
    assert errors == []


def test_sigterm_under_inference_load(models_dir, tmp_path):
    """Inference clients over HTTP and gRPC during SIGTERM: every answer a client gets is the correct one; the
    only refusals are 503 / UNAVAILABLE ("shutting down") or a closed listener — no accepted request is dropped
    half-way (reset, 500, INTERNAL)."""
    import numpy as np
    import onnxruntime as ort
    import tritonclient.grpc as tgrpc
    from tritonclient.utils import InferenceServerException

    s = RunningServer(write_config(tmp_path / "s.yaml", [models_dir]))
    x = np.random.default_rng(9).standard_normal((2, 3, 32, 32)).astype(np.float32)
    path = models_dir / "resnet_tiny" / "1" / "model.onnx"
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"pixel_values": x})[0]
    stop = threading.Event()
    good, bad = [], []

    def check(result):
        good.append(np.all(np.abs(result - want) <= 1e-4 * np.maximum(1.0, np.abs(want))))

    def client(module, address, refused, closed_listener=()):
        """Infers until stopped; ends at the first refusal, which must be one `refused` accepts."""
        c = module.InferenceServerClient(address)
        while not stop.is_set():
            i = module.InferInput("pixel_values", list(x.shape), "FP32")
            i.set_data_from_numpy(x)
            try:
                check(c.infer("resnet_tiny", [i]).as_numpy("logits"))
            except InferenceServerException as e:
                if not refused(e):
                    bad.append((e.status(), e.message()))
                return
            except closed_listener:  # HTTP: the listener has closed, the request was never accepted
                return
            except Exception as e:  # noqa: BLE001 -- anything else is a dropped request
                bad.append(repr(e))
                return

    http = (thttp, s.http, lambda e: "shutting down" in e.message(), (Exception,))
    grpc_ = (tgrpc, s.grpc, lambda e: e.status() in ("StatusCode.UNAVAILABLE", "StatusCode.CANCELLED"))
    threads = [threading.Thread(target=client, args=a) for a in (http, grpc_, http, grpc_)]
    for t in threads:
        t.start()
    waiter = threading.Event()
    for _ in range(1000):
        if len(good) >= 40:
            break
        waiter.wait(0.01)  # polling for progress, not timing anything
    code = s.stop(signal.SIGTERM)
    stop.set()
    for t in threads:
        t.join(timeout=30)
    assert code == 0, s.log()
    assert len(good) >= 40 and all(good)
    assert bad == []


def test_sigterm_leaves_no_http_request_unanswered(models_dir, tmp_path):
    """Clients that reconnect after each "Connection: close" keep sending through SIGTERM. Every request on a
    connection the server accepted gets an answer: the correct one, or 503 "shutting down". A client that cannot
    connect any more sees its connection refused. No request is met by a reset or a close without an answer:
    that happens when the listener stops over a connection it had queued or accepted but not yet read."""
    import collections
    import http.client
    import json

    import numpy as np
    import onnxruntime as ort

    s = RunningServer(write_config(tmp_path / "s.yaml", [models_dir]))
    x = np.random.default_rng(5).standard_normal((1, 3, 32, 32)).astype(np.float32)
    path = models_dir / "resnet_tiny" / "1" / "model.onnx"
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"pixel_values": x})[0]
    body = json.dumps({"inputs": [{"name": "pixel_values", "datatype": "FP32", "shape": list(x.shape),
                                   "data": x.ravel().tolist()}]})
    host, port = s.http.rsplit(":", 1)
    lock = threading.Lock()
    outcomes, bad = collections.Counter(), []

    def count(outcome):
        with lock:
            outcomes[outcome] += 1

    def fail(what):
        with lock:
            bad.append(what)

    def client():
        conn = None
        while True:
            if conn is None:
                conn = http.client.HTTPConnection(host, int(port), timeout=60)
                try:
                    conn.connect()
                except ConnectionError:  # refused, or reset before it was established: no request was sent
                    count("refused")
                    return
            try:
                conn.request("POST", "/v2/models/resnet_tiny/infer", body, {"Content-Type": "application/json"})
                r = conn.getresponse()
                answer = json.loads(r.read())
            except (OSError, http.client.HTTPException, ValueError) as e:
                fail(repr(e))
                return
            if r.status == 200:
                got = np.array(answer["outputs"][0]["data"], np.float32).reshape(want.shape)
                count("ok" if np.allclose(got, want, rtol=1e-4, atol=1e-4) else "wrong")
            elif r.status == 503 and "shutting down" in answer.get("error", ""):
                count("503")
            else:
                fail((r.status, answer))
                return
            if (r.getheader("Connection") or "").lower() == "close":
                conn.close()
                conn = None

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    waiter = threading.Event()
    for _ in range(3000):
        if outcomes["ok"] >= 100:
            break
        waiter.wait(0.01)  # polling for progress, not timing anything
    code = s.stop(signal.SIGTERM)
    for t in threads:
        t.join(timeout=60)
    assert code == 0, s.log()
    assert bad == [], (bad, outcomes)
    assert outcomes["ok"] >= 100 and outcomes["wrong"] == 0, outcomes
    assert outcomes["refused"] == len(threads), outcomes  # every client ended on a closed listener
