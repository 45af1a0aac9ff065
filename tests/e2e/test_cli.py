"""The command line and config errors, as a user meets them: exit codes and one-line messages."""
import os
import re
import socket
import subprocess

import pytest

from conftest import BINARY, ROOT, RunningServer, write_config


def run(*args, env=None, timeout=30):
    return subprocess.run([str(BINARY), *args], capture_output=True, text=True, timeout=timeout, env=env)


def assert_one_line_error(result, *parts):
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("coreserve: ")
    for p in parts:
        assert p in lines[0], (p, lines[0])


def test_help_and_version():
    r = run("--help")
    assert r.returncode == 0 and "serve" in r.stdout and "--version" in r.stdout
    r = run("serve", "--help")
    assert r.returncode == 0
    flags = set(re.findall(r"^\s+(--[a-z-]+)", r.stdout, re.M))
    assert flags == {"--config", "--http-port", "--grpc-port", "--metrics-port", "--model-repository",
                     "--log-level", "--help"}
    for line in r.stdout.splitlines():
        if line.strip().startswith("--"):
            assert len(line.split()) >= 3, f"flag without a description: {line!r}"
    r = run("--version")
    assert r.returncode == 0 and re.match(r"coreserve \d+\.\d+\.\d+ ", r.stdout)


def test_unknown_flag_and_command():
    assert_one_line_error(run("--frobnicate"), "unknown flag '--frobnicate'")
    assert_one_line_error(run("serve", "--config", "x.yaml", "--frobnicate=1"), "unknown flag '--frobnicate'")
    assert_one_line_error(run("launch"), "unknown command 'launch'")
    assert_one_line_error(run("serve"), "--config")


@pytest.mark.parametrize("text,parts", [
    ("http: {port: [1, 2\n", ["YAML syntax error"]),
    ("htp: {port: 1}\n", ["unknown key 'htp'", "allowed: http, grpc, metrics"]),
    ("grpc: {port: eighty}\n", ["grpc.port", "expected an integer from 0 to 65535", "'eighty'"]),
    ("log_level: chatty\n", ["log_level", "debug, info, warning, error"]),
])
def test_broken_config_is_one_line_naming_file_and_key(tmp_path, text, parts):
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    assert_one_line_error(run("serve", "--config", str(path)), str(path), *parts)


def test_missing_config_and_bad_overrides(tmp_path):
    assert_one_line_error(run("serve", "--config", str(tmp_path / "absent.yaml")), "absent.yaml")
    ok = write_config(tmp_path / "ok.yaml", [])
    assert_one_line_error(run("serve", "--config", str(ok), "--http-port", "99999"), "--http-port")
    assert_one_line_error(run("serve", "--config", str(ok), "--log-level", "loud"), "--log-level")


def test_unknown_isa_cap_is_refused(tmp_path):
    ok = write_config(tmp_path / "ok.yaml", [])
    env = dict(os.environ, CORESERVE_ISA="avx1024")
    assert_one_line_error(run("serve", "--config", str(ok), env=env), "CORESERVE_ISA", "avx1024", "scalar")


def test_isa_cap_changes_the_chosen_kernel(tmp_path):
    ok = write_config(tmp_path / "ok.yaml", [])
    s = RunningServer(ok, env=dict(os.environ, CORESERVE_ISA="scalar"))
    try:
        assert ("f32_vadd=f32_vadd_scalar sgemm=sgemm_portable bf16gemm=bf16gemm_portable qgemm=qgemm_u8s8_portable "
                "f32_math=f32_math_scalar f32_quantize=f32_quantize_scalar") in s.log()
    finally:
        assert s.stop() == 0


@pytest.mark.parametrize("listener", ["http", "grpc", "metrics"])
def test_port_in_use_exits_1_naming_the_listener(tmp_path, listener):
    """A busy port is an error, never a silently shared port (SO_REUSEPORT is off)."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        ok = write_config(tmp_path / "ok.yaml", [])
        ports = {"http": "0", "grpc": "0", "metrics": "0", listener: str(port)}
        r = subprocess.run([str(BINARY), "serve", "--config", str(ok), "--http-port", ports["http"],
                            "--grpc-port", ports["grpc"], "--metrics-port", ports["metrics"]],
                           capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, r.stderr
    assert f"{listener}: cannot listen on 127.0.0.1:{port}" in r.stderr.strip().splitlines()[-1]


def test_two_servers_cannot_share_a_port(tmp_path):
    ok = write_config(tmp_path / "ok.yaml", [])
    first = RunningServer(ok)
    try:
        for listener in ("http", "grpc", "metrics"):
            ports = {"http": "0", "grpc": "0", "metrics": "0", listener: str(first.ports[listener])}
            r = subprocess.run([str(BINARY), "serve", "--config", str(ok), "--http-port", ports["http"],
                                "--grpc-port", ports["grpc"], "--metrics-port", ports["metrics"]],
                               capture_output=True, text=True, timeout=30)
            assert r.returncode == 1 and "cannot listen" in r.stderr, (listener, r.stderr)
    finally:
        assert first.stop() == 0


def test_default_config_serves_the_generated_repository():
    """config/default.yaml (what `make serve` runs) finds the models the build generated."""
    if not (ROOT / "build" / "models").is_dir():
        pytest.skip("build/models not generated (run through make test)")
    s = RunningServer(ROOT / "config" / "default.yaml")
    try:
        assert "model bert_tiny version 1 loaded" in s.log()
        assert "model resnet_tiny version 1 loaded" in s.log()
        assert "server ready" in s.log()
    finally:
        assert s.stop() == 0


def test_tune_measures_every_layout_and_writes_a_config_that_serves(models_dir, tmp_path):
    """coreserve tune on a repository folder: one table row per layout of the cores (one group, each split,
    each pipeline), one marked best for throughput and one for latency, with costs when priced; the recommended
    config loads in a server that then answers like ONNX Runtime. --cores beyond the CPUs is refused."""
    import numpy as np
    import onnxruntime as ort
    import tritonclient.http as thttp

    cores = min(2, len(os.sched_getaffinity(0)))
    out = tmp_path / "recommended.yaml"
    r = run("tune", str(models_dir / "resnet_tiny"), "--cores", str(cores), "--budget", "4", "--hourly-price", "0.5",
            "--output", str(out), timeout=300)
    assert r.returncode == 0, r.stderr
    rows = [line for line in r.stdout.splitlines() if line.startswith("| groups") or line.startswith("| pipeline")]
    assert len(rows) == (3 if cores == 2 else 1), r.stdout
    assert sum("throughput" in row for row in rows) == 1 and sum("latency" in row for row in rows) == 1
    assert all(float(row.split("|")[5]) > 0 and float(row.split("|")[8]) > 0 for row in rows), r.stdout
    assert f"[{len(rows)}/{len(rows)}]" in r.stderr  # progress as it goes
    repo = tmp_path / "repo"
    (repo / "m" / "1").mkdir(parents=True)
    (repo / "m" / "1" / "model.onnx").write_bytes((models_dir / "resnet_tiny" / "1" / "model.onnx").read_bytes())
    (repo / "m" / "config.yaml").write_text(out.read_text())
    s = RunningServer(write_config(tmp_path / "server.yaml", [repo]))
    try:
        x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
        i = thttp.InferInput("pixel_values", list(x.shape), "FP32")
        i.set_data_from_numpy(x)
        got = thttp.InferenceServerClient(s.http).infer("m", [i]).as_numpy("logits")
        want = ort.InferenceSession(str(models_dir / "resnet_tiny" / "1" / "model.onnx"),
                                    providers=["CPUExecutionProvider"]).run(None, {"pixel_values": x})[0]
        assert np.abs(got - want).max() <= 1e-4 * max(1.0, float(np.abs(want).max()))
    finally:
        assert s.stop() == 0, s.log()
    r = run("tune", str(models_dir / "resnet_tiny"), "--cores", "1024")
    assert r.returncode == 2 and "but this process may use" in r.stderr
