"""ONNX Runtime's contrib operators that its transformer optimizer writes into BERT-family files
(com.microsoft::Attention, EmbedLayerNormalization), in small graphs built here, run through `coreserve run` and
compared with ONNX Runtime itself (their defining implementation) over their mask forms and options."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from test_runtime_vs_ort import assert_matches_ort, run_coreserve

OPSETS = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]


def save(tmp_path, nodes, inputs, outputs, initializers, name):
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=initializers)
    model = helper.make_model(graph, opset_imports=OPSETS, ir_version=8)
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, path)
    return path


def attention_model(tmp_path, rng, hidden, heads, mask_shape=None, unidirectional=0, bias_input=False,
                    v_hidden=None, scale=None):
    v_hidden = v_hidden or hidden
    total = 2 * hidden + v_hidden
    w = numpy_helper.from_array((rng.standard_normal((hidden, total)) * 0.3).astype(np.float32), "w")
    b = numpy_helper.from_array((rng.standard_normal(total) * 0.1).astype(np.float32), "b")
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", hidden])]
    node_inputs = ["x", "w", "b", ""]
    if mask_shape is not None:
        inputs.append(helper.make_tensor_value_info("mask_index", TensorProto.INT32, mask_shape))
        node_inputs[3] = "mask_index"
    if bias_input:
        inputs.append(helper.make_tensor_value_info("attention_bias", TensorProto.FLOAT, [1, heads, "seq", "seq"]))
        node_inputs += ["", "attention_bias"]
    attrs = {"num_heads": heads, "unidirectional": unidirectional}
    if v_hidden != hidden:
        attrs["qkv_hidden_sizes"] = [hidden, hidden, v_hidden]
    if scale is not None:
        attrs["scale"] = scale
    node = helper.make_node("Attention", node_inputs, ["y"], domain="com.microsoft", **attrs)
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", v_hidden])]
    return save(tmp_path, [node], inputs, outputs, [w, b], "attention")


def padded_lengths(batch, seq):
    return np.array([max(1, seq - 3 * b) for b in range(batch)], np.int32)


@pytest.mark.parametrize("batch,seq", [(1, 1), (2, 7), (3, 33)])
@pytest.mark.parametrize("mask", ["none", "lengths", "end_start", "raw2d", "raw3d"])
def test_attention_masks(tmp_path, batch, seq, mask):
    rng = np.random.default_rng(batch * 100 + seq)
    hidden, heads = 32, 4
    x = rng.standard_normal((batch, seq, hidden)).astype(np.float32)
    feeds = {"x": x}
    lengths = padded_lengths(batch, seq)
    shape = None
    if mask == "lengths":
        shape, feeds["mask_index"] = ["batch"], lengths
    elif mask == "end_start":
        starts = np.minimum(lengths - 1, np.arange(batch)).astype(np.int32)
        shape, feeds["mask_index"] = [2 * batch], np.concatenate([lengths, starts])
    elif mask == "raw2d":
        raw = (np.arange(seq)[None, :] < lengths[:, None]).astype(np.int32)
        shape, feeds["mask_index"] = ["batch", "seq"], raw
    elif mask == "raw3d":
        raw = (rng.random((batch, seq, seq)) > 0.3).astype(np.int32)
        raw[:, :, 0] = 1  # every query attends to something
        shape, feeds["mask_index"] = ["batch", "seq", "seq"], raw
    model = attention_model(tmp_path, rng, hidden, heads, mask_shape=shape)
    assert_matches_ort(model, feeds, tmp_path)


@pytest.mark.parametrize("batch,seq", [(1, 5), (2, 16)])
def test_attention_causal_bias_and_sizes(tmp_path, batch, seq):
    rng = np.random.default_rng(seq)
    hidden, heads = 48, 3
    feeds = {"x": rng.standard_normal((batch, seq, hidden)).astype(np.float32),
             "mask_index": padded_lengths(batch, seq),
             "attention_bias": rng.standard_normal((1, heads, seq, seq)).astype(np.float32)}
    model = attention_model(tmp_path, rng, hidden, heads, mask_shape=["batch"], unidirectional=1,
                            bias_input=True, v_hidden=24, scale=0.3)
    assert_matches_ort(model, feeds, tmp_path)


def test_attention_with_past_is_refused_at_load(tmp_path):
    w = numpy_helper.from_array(np.zeros((8, 24), np.float32), "w")
    node = helper.make_node("Attention", ["x", "w", "", "", "past"], ["y", "present"], domain="com.microsoft",
                            num_heads=2)
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 8]),
              helper.make_tensor_value_info("past", TensorProto.FLOAT, [2, 1, 2, 0, 4])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 8]),
               helper.make_tensor_value_info("present", TensorProto.FLOAT, [2, 1, 2, 2, 4])]
    model = save(tmp_path, [node], inputs, outputs, [w], "past")
    r = run_coreserve(model, {"x": np.zeros((1, 2, 8), np.float32),
                              "past": np.zeros((2, 1, 2, 0, 4), np.float32)}, tmp_path)
    assert r.returncode != 0
    assert "past (KV cache) is not supported" in r.stderr


def embed_model(tmp_path, rng, hidden, vocab, with_segments, with_mask, with_positions):
    tables = {"word": (vocab, hidden), "position": (64, hidden), "segment": (2, hidden)}
    inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n) for n, s in tables.items()]
    inits += [numpy_helper.from_array((1 + 0.1 * rng.standard_normal(hidden)).astype(np.float32), "gamma"),
              numpy_helper.from_array((0.1 * rng.standard_normal(hidden)).astype(np.float32), "beta")]
    ids = lambda n: helper.make_tensor_value_info(n, TensorProto.INT32, ["batch", "seq"])  # noqa: E731
    inputs = [ids("input_ids")]
    node_inputs = ["input_ids", "", "word", "position", "segment", "gamma", "beta", "", ""]
    if with_segments:
        inputs.append(ids("segment_ids"))
        node_inputs[1] = "segment_ids"
    if with_mask:
        inputs.append(ids("mask"))
        node_inputs[7] = "mask"
    if with_positions:
        inputs.append(helper.make_tensor_value_info("position_ids", TensorProto.INT32, [1, "seq"]))
        node_inputs[8] = "position_ids"
    node = helper.make_node("EmbedLayerNormalization", node_inputs, ["y", "mask_index", "sum"],
                            domain="com.microsoft", epsilon=1e-5)
    outputs = [helper.make_tensor_value_info(n, t, s) for n, t, s in (
        ("y", TensorProto.FLOAT, ["batch", "seq", hidden]), ("mask_index", TensorProto.INT32, ["batch"]),
        ("sum", TensorProto.FLOAT, ["batch", "seq", hidden]))]
    return save(tmp_path, [node], inputs, outputs, inits, "embed")


@pytest.mark.parametrize("with_segments,with_mask,with_positions",
                         [(True, True, False), (False, False, False), (True, False, True), (False, True, True)])
def test_embed_layer_normalization(tmp_path, with_segments, with_mask, with_positions):
    rng = np.random.default_rng(int(with_segments) + 2 * int(with_mask) + 4 * int(with_positions))
    batch, seq, vocab = 3, 11, 50
    model = embed_model(tmp_path, rng, 32, vocab, with_segments, with_mask, with_positions)
    feeds = {"input_ids": rng.integers(0, vocab, (batch, seq)).astype(np.int32)}
    if with_segments:
        feeds["segment_ids"] = (np.arange(seq)[None, :] >= 5).astype(np.int32).repeat(batch, 0)
    if with_mask:
        feeds["mask"] = (np.arange(seq)[None, :] < padded_lengths(batch, seq)[:, None]).astype(np.int32)
    if with_positions:
        feeds["position_ids"] = rng.permutation(seq).astype(np.int32)[None, :]
    assert_matches_ort(model, feeds, tmp_path)


def test_embed_layer_normalization_rejects_out_of_range_ids(tmp_path):
    model = embed_model(tmp_path, np.random.default_rng(0), 16, 20, False, False, False)
    r = run_coreserve(model, {"input_ids": np.array([[1, 20]], np.int32)}, tmp_path)
    assert r.returncode != 0
    assert "input id 20 at [0,1] is outside [0, 20)" in r.stderr
