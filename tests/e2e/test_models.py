"""The default repository's generator: deterministic, valid ONNX, and models that behave as their kind should,
checked by running them in ONNX Runtime (the independent reference)."""
import numpy as np
import onnx
import onnxruntime as ort

import make_models


def session(models_dir, name):
    return ort.InferenceSession(str(models_dir / name / "1" / "model.onnx"), providers=["CPUExecutionProvider"])


def test_generation_is_deterministic(tmp_path, models_dir):
    make_models.main(["--out", str(tmp_path)])
    for name in make_models.MODELS:
        a = (models_dir / name / "1" / "model.onnx").read_bytes()
        b = (tmp_path / name / "1" / "model.onnx").read_bytes()
        assert a == b, name


def test_models_pass_the_full_onnx_check(models_dir):
    for name in make_models.MODELS:
        model = onnx.load(str(models_dir / name / "1" / "model.onnx"))
        onnx.checker.check_model(model, full_check=True)
        assert model.ir_version == 8 and model.opset_import[0].version == 17


def test_bert_tiny_padding_is_masked_out(models_dir):
    """Appending padded tokens (attention_mask 0) must not change the logits: the mask is wired like BERT's."""
    s = session(models_dir, "bert_tiny")
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 1000, (2, 7), dtype=np.int64)
    types = np.zeros_like(ids)
    short = s.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": types})[0]
    padded_ids = np.concatenate([ids, rng.integers(0, 1000, (2, 5), dtype=np.int64)], axis=1)
    mask = np.concatenate([np.ones_like(ids), np.zeros((2, 5), np.int64)], axis=1)
    padded = s.run(None, {"input_ids": padded_ids, "attention_mask": mask,
                          "token_type_ids": np.zeros_like(padded_ids)})[0]
    assert short.shape == (2, 2)
    np.testing.assert_allclose(padded, short, rtol=1e-4, atol=1e-5)
    # ...while unmasking the padding does change them (the test above is not vacuous).
    unmasked = s.run(None, {"input_ids": padded_ids, "attention_mask": np.ones_like(padded_ids),
                            "token_type_ids": np.zeros_like(padded_ids)})[0]
    assert np.abs(unmasked - short).max() > 1e-3
    # Different sentences give different logits.
    assert np.abs(short[0] - short[1]).max() > 1e-3


def test_resnet_tiny_rows_are_independent(models_dir):
    s = session(models_dir, "resnet_tiny")
    x = np.random.default_rng(1).standard_normal((3, 3, 32, 32)).astype(np.float32)
    batch = s.run(None, {"pixel_values": x})[0]
    assert batch.shape == (3, 10) and np.isfinite(batch).all()
    for i in range(3):
        np.testing.assert_allclose(s.run(None, {"pixel_values": x[i:i + 1]})[0][0], batch[i], rtol=1e-5, atol=1e-5)
    assert np.abs(batch[0] - batch[1]).max() > 1e-3
