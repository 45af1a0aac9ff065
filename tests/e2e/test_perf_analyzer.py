"""Triton's perf_analyzer, unchanged, against the server: both protocols, concurrency 1 and 4, each level must
report a positive throughput and the run must end without errors. (A smoke run for compatibility; the serving
benchmark is `make bench-serving`.)"""
import platform
import re
import subprocess

import pytest

from conftest import ROOT

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
