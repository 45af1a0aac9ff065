"""`coreserve run --precision bf16|int8` on models written by the real exporters (tests/fixtures), against ONNX
Runtime's fp32 outputs: the accuracy the issue promises (BERT-style classifiers: cosine similarity >= 0.999 in
bf16, >= 0.99 in int8), and proof that the precision is really applied (the outputs move away from fp32, by no
more than the format's rounding implies)."""
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from test_fixtures import inputs_for
from test_runtime_vs_ort import run_coreserve

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
# (fixture, precision, minimum cosine similarity over every output element)
CASES = [(m, "bf16", 0.999) for m in ("bert_ts_opset17", "roberta_ts_opset17", "distilbert_ort_optimized",
                                      "gpt2_ts_opset17", "resnet_ts_opset17")]
CASES += [(m, "int8", 0.99) for m in ("bert_ts_opset17", "roberta_ts_opset17", "distilbert_ort_optimized",
                                      "gpt2_ts_opset17", "resnet_ts_opset17")]


def cosine(a, b):
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("name,precision,min_cos", CASES, ids=lambda v: str(v))
def test_precision_against_fp32(tmp_path, name, precision, min_cos):
    model = FIXTURES / f"{name}.onnx"
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    feeds = inputs_for(session, 8, 32, np.random.default_rng(1))
    want = session.run(None, feeds)
    r = run_coreserve(model, feeds, tmp_path, extra=("--precision", precision))
    assert r.returncode == 0, r.stderr
    for meta, ref in zip(session.get_outputs(), want):
        got = np.load(tmp_path / "out" / f"{meta.name}.npy")
        cos = cosine(got, ref)
        rel = float(np.abs(got - ref).max() / np.abs(ref).max())
        print(f"{name} {precision} {meta.name}: cosine {cos:.6f}, max error / max |ref| {rel:.2e}")
        assert cos >= min_cos, (meta.name, cos)
        # Really computed in the reduced precision: farther from fp32 than fp32 rounding noise (1e-6), but
        # within a few percent of the output's range.
        assert 1e-6 < rel < 0.05, (meta.name, rel)
