"""TLS on every listener, with certificates made at test time by the openssl command: HTTPS inference (the
standard library's client and tritonclient's), gRPC over TLS (tritonclient), /metrics over HTTPS; mutual TLS
turns away clients without a certificate from the configured CA; plaintext clients and clients that do not trust
the server's CA get no answer; bad certificate configs stop the server at start, naming the key."""
import json
import ssl
import subprocess
import urllib.error
import urllib.request

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as tgrpc
import tritonclient.http as thttp
from tritonclient.utils import InferenceServerException

from conftest import RunningServer


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.crt",
            "-days", "2", "-subj", f"/CN={name}", cwd=d)


def make_signed(d, name, ca, extensions):
    """A key and a certificate for `name` signed by the CA `ca`, with the x509v3 `extensions` given."""
    (d / f"{name}.ext").write_text(extensions)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN={name}", cwd=d)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key", "-CAcreateserial",
            "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext", cwd=d)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, a server certificate for 127.0.0.1 / localhost, a client certificate from the same CA and one from
    another CA."""
    d = tmp_path_factory.mktemp("pki")
    make_ca(d, "ca")
    make_ca(d, "rogue_ca")
    make_signed(d, "server", "ca", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    make_signed(d, "client", "ca", "extendedKeyUsage=clientAuth\n")
    make_signed(d, "rogue_client", "rogue_ca", "extendedKeyUsage=clientAuth\n")
    return d


def tls_block(pki, client_ca=False):
    lines = f"  tls:\n    cert_file: {pki / 'server.crt'}\n    key_file: {pki / 'server.key'}\n"
    if client_ca:
        lines += f"    client_ca_file: {pki / 'ca.crt'}\n"
    return lines


def start(models_dir, tmp_path, pki, client_ca=False, listeners=("http", "grpc", "metrics")):
    config = tmp_path / "server.yaml"
    text = f"model_repository: [{models_dir}]\n"
    for name in listeners:
        text += f"{name}:\n  address: 127.0.0.1\n" + tls_block(pki, client_ca)
    config.write_text(text)
    return RunningServer(config)


def context(pki, client=None, trust="ca"):
    ctx = ssl.create_default_context(cafile=str(pki / f"{trust}.crt"))
    if client:
        ctx.load_cert_chain(str(pki / f"{client}.crt"), str(pki / f"{client}.key"))
    return ctx


def https(address, path, ctx, body=None):
    req = urllib.request.Request(f"https://{address}{path}", data=body, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def image():
    return np.random.default_rng(11).standard_normal((2, 3, 32, 32)).astype(np.float32)


def reference(models_dir, x):
    session = ort.InferenceSession(str(models_dir / "resnet_tiny" / "1" / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    return session.run(None, {"pixel_values": x})[0]


def close(a, b):
    return a.shape == b.shape and np.all(np.abs(a - b) <= 1e-4 * np.maximum(1.0, np.abs(b)))


def infer_json(address, ctx, x):
    body = json.dumps({"inputs": [{"name": "pixel_values", "datatype": "FP32", "shape": list(x.shape),
                                   "data": x.ravel().tolist()}]}).encode()
    status, data = https(address, "/v2/models/resnet_tiny/infer", ctx, body)
    assert status == 200, data
    out = json.loads(data)["outputs"][0]
    return np.array(out["data"], np.float32).reshape(out["shape"])


def grpc_infer(client, x):
    i = tgrpc.InferInput("pixel_values", list(x.shape), "FP32")
    i.set_data_from_numpy(x)
    return client.infer("resnet_tiny", [i]).as_numpy("logits")


def test_https_grpc_tls_and_metrics(models_dir, tmp_path, pki):
    s = start(models_dir, tmp_path, pki)
    try:
        x, ctx = image(), context(pki)
        want = reference(models_dir, x)
        assert https(s.http, "/v2/health/ready", ctx)[0] == 200
        assert close(infer_json(s.http, ctx, x), want)

        client = thttp.InferenceServerClient(s.http, ssl=True, ssl_options={"ca_certs": str(pki / "ca.crt")})
        i = thttp.InferInput("pixel_values", list(x.shape), "FP32")
        i.set_data_from_numpy(x, binary_data=True)
        assert close(client.infer("resnet_tiny", [i]).as_numpy("logits"), want)

        secure = tgrpc.InferenceServerClient(s.grpc, ssl=True, root_certificates=str(pki / "ca.crt"))
        assert secure.is_server_ready()
        assert close(grpc_infer(secure, x), want)

        status, text = https(s.metrics, "/metrics", ctx)
        assert status == 200 and b"coreserve_" in text

        # A plaintext client gets no HTTP answer from the HTTPS port, and none over gRPC.
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)) as e:
            urllib.request.urlopen(f"http://{s.http}/v2/health/ready", timeout=10)
        assert not isinstance(e.value, urllib.error.HTTPError)
        with pytest.raises(InferenceServerException) as e:
            tgrpc.InferenceServerClient(s.grpc).is_server_ready(client_timeout=10)
        assert e.value.status() in ("StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED")
        # A client that does not trust the server's CA refuses it.
        with pytest.raises(urllib.error.URLError) as e:
            https(s.http, "/v2/health/ready", context(pki, trust="rogue_ca"))
        assert isinstance(e.value.reason, ssl.SSLCertVerificationError)
        # The server is still serving after all of that.
        assert close(infer_json(s.http, ctx, x), want)
    finally:
        assert s.stop() == 0, s.log()


def test_mutual_tls_requires_a_client_certificate_from_the_ca(models_dir, tmp_path, pki):
    s = start(models_dir, tmp_path, pki, client_ca=True, listeners=("http", "grpc"))
    try:
        x = image()
        want = reference(models_dir, x)
        assert close(infer_json(s.http, context(pki, client="client"), x), want)
        for client in (None, "rogue_client"):
            with pytest.raises((urllib.error.URLError, ConnectionError, ssl.SSLError)):
                https(s.http, "/v2/health/ready", context(pki, client=client))

        ok = tgrpc.InferenceServerClient(s.grpc, ssl=True, root_certificates=str(pki / "ca.crt"),
                                         private_key=str(pki / "client.key"),
                                         certificate_chain=str(pki / "client.crt"))
        assert close(grpc_infer(ok, x), want)
        for client in (None, "rogue_client"):
            keys = {} if client is None else {"private_key": str(pki / f"{client}.key"),
                                               "certificate_chain": str(pki / f"{client}.crt")}
            refused = tgrpc.InferenceServerClient(s.grpc, ssl=True, root_certificates=str(pki / "ca.crt"), **keys)
            with pytest.raises(InferenceServerException) as e:
                refused.is_server_ready(client_timeout=10)
            assert e.value.status() in ("StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED")
        assert close(grpc_infer(ok, x), want)
    finally:
        assert s.stop() == 0, s.log()


@pytest.mark.parametrize("listener, tls, error", [
    ("http", "cert_file: {d}/server.crt\n    key_file: {d}/client.key",
     "http.tls.key_file: the key does not belong to the first certificate of http.tls.cert_file"),
    ("grpc", "cert_file: {d}/missing.crt\n    key_file: {d}/server.key", "grpc.tls.cert_file: cannot read"),
    ("metrics", "cert_file: {d}/server.key\n    key_file: {d}/server.key",
     "metrics.tls.cert_file: no PEM certificate in the file"),
    ("grpc", "cert_file: {d}/server.crt\n    key_file: {d}/server.crt", "grpc.tls.key_file: not an unencrypted PEM"),
    ("http", "cert_file: {d}/server.crt", "http.tls: needs both cert_file and key_file"),
    ("http", "cert_file: {d}/server.crt\n    key_file: {d}/server.key\n    client_ca_file: {d}/server.key",
     "http.tls.client_ca_file: no PEM certificate in the file"),
])
def test_bad_tls_config_stops_the_server_at_start(models_dir, tmp_path, pki, listener, tls, error):
    config = tmp_path / "server.yaml"
    config.write_text(f"model_repository: [{models_dir}]\n{listener}:\n  tls:\n    {tls.format(d=pki)}\n")
    with pytest.raises(RuntimeError, match="exited at start") as e:
        RunningServer(config)
    assert error in str(e.value)
    assert "PRIVATE KEY" not in str(e.value)  # no key material in the log
