"""Triton's perf_analyzer, unchanged, against the server: both protocols, concurrency 1 and 4, each level must
report a positive throughput and the run must end without errors. (A smoke run for compatibility; the serving
benchmark is `make bench-serving`.)"""
import platform
import re
import subprocess

import numpy as np
import pytest
import tritonclient.http as thttp
from tritonclient.utils import InferenceServerException

from conftest import ROOT, RunningServer, write_config

PERF_ANALYZER = ROOT / ".perf-analyzer" / "perf_analyzer"
LEVEL_RE = re.compile(r"Concurrency: (\d+), throughput: ([\d.]+) infer/sec, latency (\d+) usec")

pytestmark = pytest.mark.skipif(platform.machine() != "x86_64",
                                reason="perf_analyzer's PyPI binary exists for x86-64 only")


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("model,shapes", [
    ("resnet_tiny", ["pixel_values:1,3,32,32"]),
    ("bert_tiny", ["input_ids:1,16", "attention_mask:1,16", "token_type_ids:1,16"]),
])
def test_perf_analyzer_runs_clean(server, protocol, model, shapes):
    assert PERF_ANALYZER.exists(), "run scripts/setup-perf-analyzer.sh (make e2e-test does)"
    address = server.http if protocol == "http" else server.grpc
    args = [str(PERF_ANALYZER), "-m", model, "-u", address, "-i", protocol, "--concurrency-range", "1:4:3",
            "--measurement-interval", "500", "--max-trials", "4", "--stability-percentage", "100"]
    for s in shapes:
        args += ["--shape", s]
    if model == "bert_tiny":
        args += ["--input-data", "zero"]  # token ids must be valid indices; zeros are
    run = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    levels = {int(c): float(t) for c, t, _ in LEVEL_RE.findall(run.stdout)}
    assert set(levels) == {1, 4}, run.stdout
    assert all(t > 0 for t in levels.values()), run.stdout
    assert "error" not in (run.stdout + run.stderr).lower(), run.stdout + run.stderr


def test_input_overrides_make_shapes_concrete_for_perf_analyzer(models_dir, tmp_path):
    """inputs overrides in config.yaml give bert_tiny's dynamic sequence a size: metadata and Triton's model
    configuration show it, perf_analyzer then runs without --shape, and a request of another length is refused
    naming the input."""
    repo = tmp_path / "repo"
    (repo / "bert" / "1").mkdir(parents=True)
    (repo / "bert" / "1" / "model.onnx").write_bytes((models_dir / "bert_tiny" / "1" / "model.onnx").read_bytes())
    dims = "{dims: [-1, 16]}"
    (repo / "bert" / "config.yaml").write_text(
        f"max_batch_size: 4\ninputs: {{input_ids: {dims}, attention_mask: {dims}, token_type_ids: {dims}}}\n")
    s = RunningServer(write_config(tmp_path / "server.yaml", [repo]))
    try:
        client = thttp.InferenceServerClient(s.http)
        assert [i["shape"] for i in client.get_model_metadata("bert")["inputs"]] == [[-1, 16]] * 3
        assert [i["dims"] for i in client.get_model_config("bert")["input"]] == [[16]] * 3
        run = subprocess.run([str(PERF_ANALYZER), "-m", "bert", "-u", s.grpc, "-i", "grpc", "--concurrency-range", "2",
                              "--measurement-interval", "500", "--max-trials", "4", "--stability-percentage", "100",
                              "--input-data", "zero"], capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stdout + run.stderr
        assert float(LEVEL_RE.findall(run.stdout)[0][1]) > 0, run.stdout
        x = np.zeros((1, 8), np.int64)
        inputs = []
        for name in ("input_ids", "attention_mask", "token_type_ids"):
            inputs.append(thttp.InferInput(name, [1, 8], "INT64"))
            inputs[-1].set_data_from_numpy(x)
        with pytest.raises(InferenceServerException) as e:
            client.infer("bert", inputs)
        assert "input 'input_ids': shape [1,8] does not fit [-1,16]" in e.value.message()
    finally:
        assert s.stop() == 0, s.log()
