"""The Prometheus endpoint, parsed by the reference Python client and checked against /proc."""
import os
import platform
import subprocess

import numpy as np
import pytest
import tritonclient.http as thttp

from conftest import RunningServer, write_config
from http_util import get, get_json
from metrics_util import scrape, value


def proc_status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def test_build_info_matches_server_metadata(server):
    families = scrape(server)
    info = families["coreserve_build_info"].samples[0]
    assert info.value == 1
    assert info.labels["version"] == get_json(server.http, "/v2")[1]["version"]
    assert info.labels["build_type"] and info.labels["revision"]
    kernels = {s.labels["family"]: s.labels["kernel"] for s in families["coreserve_kernel_info"].samples}
    assert set(kernels) == {"f32_vadd", "sgemm", "bf16gemm", "qgemm", "f32_math", "f32_quantize"}
    # Independent reading of the CPU: each kernel exactly when /proc/cpuinfo lists its ISA.
    if platform.machine() == "aarch64":
        feats = set(next((line.split(":", 1)[1].split() for line in open("/proc/cpuinfo")
                          if line.startswith("Features")), []))
        assert kernels["sgemm"] == ("sgemm_8x2vl_sve" if "sve" in feats else "sgemm_6x16_neon")
        assert kernels["bf16gemm"] == ("bf16gemm_8x8_bfmmla" if "bf16" in feats
                                       else "bf16gemm_6x16_neon" if "asimd" in feats else "bf16gemm_portable")
        assert kernels["qgemm"] == ("qgemm_u8s8_8x8_usmmla" if "i8mm" in feats
                                    else "qgemm_u8s8_6x16_sdot" if "asimddp" in feats else "qgemm_u8s8_portable")
        assert kernels["f32_quantize"] == "f32_quantize_scalar"
        return
    flags = set(next((line.split(":", 1)[1].split() for line in open("/proc/cpuinfo") if line.startswith("flags")), []))
    avx512 = {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= flags
    avx2 = {"avx2", "fma"} <= flags
    assert kernels["sgemm"] == ("sgemm_12x32_avx512" if avx512 else "sgemm_6x16_avx2" if avx2 else "sgemm_portable")
    assert kernels["bf16gemm"] == ("bf16gemm_12x32_avx512bf16" if avx512 and "avx512_bf16" in flags
                                   else "bf16gemm_12x32_avx512" if avx512 else "bf16gemm_portable")
    assert kernels["qgemm"] == ("qgemm_u8s8_avx512vnni" if avx512 and "avx512_vnni" in flags
                                else "qgemm_u8s8_avx2" if avx2 else "qgemm_u8s8_portable")
    assert kernels["f32_math"] == ("f32_math_avx512" if avx512 else "f32_math_scalar")
    assert kernels["f32_quantize"] == ("f32_quantize_avx512" if avx512 else "f32_quantize_scalar")


def test_process_metrics_agree_with_proc(server):
    pid = server.proc.pid
    families = scrape(server)
    rss = value(families, "process_resident_memory_bytes")
    assert abs(rss - proc_status_kib(pid, "VmRSS") * 1024) < 0.1 * rss
    assert value(families, "process_virtual_memory_bytes") >= rss
    assert value(families, "process_cpu_seconds_total") > 0
    assert value(families, "coreserve_process_threads") == proc_status_kib(pid, "Threads")
    open_fds = len(os.listdir(f"/proc/{pid}/fd"))
    assert abs(value(families, "process_open_fds") - open_fds) <= 2  # the scrape's own socket comes and goes
    boot = next(int(line.split()[1]) for line in open("/proc/stat") if line.startswith("btime"))
    start_ticks = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[19])
    expected_start = boot + start_ticks / os.sysconf("SC_CLK_TCK")
    # Within 0.5 s: under qemu-user the start time is the library load time, a few ms after exec.
    assert abs(value(families, "process_start_time_seconds") - expected_start) < 0.5


def test_readiness_gauges(server, broken_server):
    ok = scrape(server)
    assert value(ok, "coreserve_server_ready") == 1
    assert value(ok, "coreserve_model_ready", model="bert_tiny", version="1") == 1
    bad = scrape(broken_server)
    assert value(bad, "coreserve_server_ready") == 0
    assert value(bad, "coreserve_model_ready", model="garbage") == 0
    assert value(bad, "coreserve_model_ready", model="resnet_tiny") == 1


def test_metrics_listener_serves_only_metrics(server):
    assert get(server.metrics, "/v2/health/live")[0] == 404


def test_promtool_load_time_in_flight_and_cost_per_million(models_dir, tmp_path):
    """After some inferences, with an hourly price in the config: promtool (Debian's prometheus) accepts the
    exposition, and the per-model load time, in-flight gauge and cost per million inferences follow their
    definitions (cost = price / 3600 * the model's share of the cores * compute seconds per inference * 1e6)."""
    config = write_config(tmp_path / "server.yaml", [models_dir])
    price = 0.68
    config.write_text(config.read_text() + f"hourly_price: {price}\nmodel_defaults: {{threads: 1}}\n")
    s = RunningServer(config)
    try:
        client = thttp.InferenceServerClient(s.http)
        x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
        inp = thttp.InferInput("pixel_values", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        for _ in range(5):
            client.infer("resnet_tiny", [inp])
        status, _, body = get(s.metrics, "/metrics")
        assert status == 200
        check = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, timeout=60)
        assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()
        families = scrape(s)
        m = {"model": "resnet_tiny", "version": "1"}
        assert 0 < value(families, "coreserve_model_load_duration_seconds", **m) < 60
        assert value(families, "coreserve_inflight_requests", **m) == 0
        compute = value(families, "coreserve_compute_duration_seconds_sum", **m)
        share = min(1.0, 1 / len(os.sched_getaffinity(s.proc.pid)))
        want = price / 3600 * share * compute / 5 * 1e6
        assert abs(value(families, "coreserve_cost_per_million_inferences", **m) - want) <= 1e-6 * want
        with pytest.raises(KeyError):  # no inference yet, no cost
            value(families, "coreserve_cost_per_million_inferences", model="bert_tiny")
    finally:
        assert s.stop() == 0, s.log()
