"""Models written by the real exporters (tests/fixtures, made by scripts/make_fixtures.py: torch.onnx.export
TorchScript at opsets 14 and 17, the dynamo exporter, and ONNX Runtime's transformer optimizer) run through
`coreserve run` and match ONNX Runtime within 1e-4 * max(1, |reference|), at several batch sizes and sequence
lengths, with padded attention masks."""
import subprocess
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from conftest import BINARY

FIXTURES = sorted((Path(__file__).resolve().parents[1] / "fixtures").glob("*.onnx"))
SHAPES = [(1, 1), (2, 16), (3, 37)]  # (batch, sequence) for text models; batch only for images


def inputs_for(session, batch, seq, rng):
    feeds = {}
    for meta in session.get_inputs():
        if meta.name == "pixel_values":
            feeds[meta.name] = rng.standard_normal((batch, 3, 64, 64)).astype(np.float32)
        elif meta.name == "input_ids":
            feeds[meta.name] = rng.integers(0, 1000, (batch, seq), dtype=np.int64)
        elif meta.name == "attention_mask":
            mask = np.ones((batch, seq), np.int64)
            for b in range(1, batch):  # right padding of different lengths, as a tokenizer pads a batch
                mask[b, max(1, seq - 5 * b):] = 0
            feeds[meta.name] = mask
        elif meta.name == "token_type_ids":
            feeds[meta.name] = (np.arange(seq)[None, :] >= seq // 2).astype(np.int64).repeat(batch, 0)
        else:
            raise AssertionError(f"unexpected input {meta.name}")
    return feeds


def test_fixtures_present():
    names = {f.stem for f in FIXTURES}
    for arch in ("bert", "roberta", "distilbert", "gpt2", "resnet"):
        assert {f"{arch}_ts_opset14", f"{arch}_ts_opset17", f"{arch}_dynamo"} <= names, arch
    assert {"bert_ort_optimized", "roberta_ort_optimized", "distilbert_ort_optimized"} <= names


@pytest.mark.parametrize("model", FIXTURES, ids=lambda p: p.stem)
def test_fixture_matches_ort(model, tmp_path):
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(len(model.stem))
    for batch, seq in SHAPES:
        feeds = inputs_for(session, batch, seq, rng)
        args = [str(BINARY), "run", str(model), "--output-dir", str(tmp_path / "out")]
        for name, array in feeds.items():
            np.save(tmp_path / f"{name}.npy", array)
            args += ["--input", f"{name}={tmp_path / name}.npy"]
        r = subprocess.run(args, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        for meta, want in zip(session.get_outputs(), session.run(None, feeds)):
            got = np.load(tmp_path / "out" / f"{meta.name}.npy")
            assert got.shape == want.shape, (meta.name, got.shape, want.shape)
            tol = 1e-4 * max(1.0, float(np.abs(want).max()))
            err = float(np.abs(got - want).max())
            assert err <= tol, (model.stem, batch, seq, meta.name, err, tol)
