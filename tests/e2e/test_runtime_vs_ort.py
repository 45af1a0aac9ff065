"""coreserve's runtime against ONNX Runtime (the independent reference) through `coreserve run`, on the default
repository's models, over several batch sizes and sequence lengths, with padded attention masks."""
import subprocess

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from conftest import BINARY


def run_coreserve(model, inputs, tmp_path, extra=()):
    args = [str(BINARY), "run", str(model), "--output-dir", str(tmp_path / "out"), *extra]
    for name, array in inputs.items():
        path = tmp_path / f"{name}.npy"
        np.save(path, array)
        args += ["--input", f"{name}={path}"]
    r = subprocess.run(args, capture_output=True, text=True, timeout=120)
    return r


def assert_matches_ort(model, inputs, tmp_path):
    r = run_coreserve(model, inputs, tmp_path)
    assert r.returncode == 0, r.stderr
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    for meta, want in zip(session.get_outputs(), session.run(None, inputs)):
        got = np.load(tmp_path / "out" / f"{meta.name}.npy")
        assert got.shape == want.shape and got.dtype == want.dtype
        # The bound: max |diff| <= 1e-4 * max(1, |reference|)
        tol = 1e-4 * max(1.0, float(np.abs(want).max()))
        assert np.abs(got - want).max() <= tol, (meta.name, np.abs(got - want).max(), tol)


def bert_inputs(batch, seq, rng):
    ids = rng.integers(0, 1000, (batch, seq), dtype=np.int64)
    mask = np.ones((batch, seq), np.int64)
    for b in range(batch):  # right-padding of varying length, as a tokenizer writes a batch
        mask[b, max(1, seq - b * 3):] = 0
    types = np.zeros((batch, seq), np.int64)
    types[:, seq // 2:] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


@pytest.mark.parametrize("batch,seq", [(1, 1), (1, 16), (2, 7), (4, 32), (3, 128)])
def test_bert_tiny_matches_ort(models_dir, tmp_path, batch, seq):
    rng = np.random.default_rng(batch * 1000 + seq)
    assert_matches_ort(models_dir / "bert_tiny" / "1" / "model.onnx", bert_inputs(batch, seq, rng), tmp_path)


@pytest.mark.parametrize("batch", [1, 2, 5])
def test_resnet_tiny_matches_ort(models_dir, tmp_path, batch):
    x = np.random.default_rng(batch).standard_normal((batch, 3, 32, 32)).astype(np.float32)
    assert_matches_ort(models_dir / "resnet_tiny" / "1" / "model.onnx", {"pixel_values": x}, tmp_path)


def test_run_errors_name_the_input(models_dir, tmp_path):
    model = models_dir / "resnet_tiny" / "1" / "model.onnx"
    bad_type = {"pixel_values": np.zeros((1, 3, 32, 32), np.float64)}
    r = run_coreserve(model, bad_type, tmp_path)
    assert r.returncode == 1 and "input 'pixel_values': expected float32, got float64" in r.stderr
    bad_shape = {"pixel_values": np.zeros((1, 3, 16, 32), np.float32)}
    r = run_coreserve(model, bad_shape, tmp_path)
    assert r.returncode == 1 and "pixel_values" in r.stderr and "[-1,3,32,32]" in r.stderr
    r = run_coreserve(model, {}, tmp_path)
    assert r.returncode == 2 and "missing --input pixel_values=FILE.npy" in r.stderr
    r = run_coreserve(model, {"pixel_values": bad_shape["pixel_values"], "extra": np.zeros(1)}, tmp_path)
    assert r.returncode == 2 and "no input named 'extra'" in r.stderr


def test_run_reports_the_failing_node(tmp_path):
    """A shape error inside the graph names the node and its op type, and the process exits cleanly."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["a", "b"])
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [3, 5])
    graph = helper.make_graph([helper.make_node("Reshape", ["x", "shape"], ["y"], name="reshape_it")],
                              "g", [x], [y], [shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    r = run_coreserve(path, {"x": np.zeros((2, 4), np.float32)}, tmp_path)
    assert r.returncode == 1
    assert "node 'reshape_it' (Reshape): cannot reshape [2,4] (8 elements) to [3,5]" in r.stderr


def test_inspect(models_dir, tmp_path):
    r = subprocess.run([str(BINARY), "inspect", str(models_dir / "bert_tiny" / "1" / "model.onnx")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    model = onnx.load(str(models_dir / "bert_tiny" / "1" / "model.onnx"))
    counts = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    for op, n in counts.items():
        assert any(line.split() == [op, str(n)] for line in r.stdout.splitlines()), (op, n)
    assert "input_ids" in r.stdout and "[?, ?]" in r.stdout and "supported: yes" in r.stdout
    # The optimized graph: fused operators appear, the erf GELU chain is gone.
    after = r.stdout.split("after optimization")[1]
    assert "coreserve::FusedMatMul" in after and "Erf" not in after

    # A model with operators the runtime lacks: every one is listed, and the exit code says so.
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])
    graph = helper.make_graph([helper.make_node("Det", ["x"], ["d"]), helper.make_node("Hardmax", ["x"], ["h"]),
                               helper.make_node("Hardmax", ["h"], ["y"])], "g", [x], [y])
    bad = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    bad.ir_version = 8
    onnx.save(bad, tmp_path / "bad.onnx")
    r = subprocess.run([str(BINARY), "inspect", str(tmp_path / "bad.onnx")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "supported: no (unsupported operators: Det (1 node), Hardmax (2 nodes))" in r.stdout
    r = run_coreserve(tmp_path / "bad.onnx", {"x": np.zeros((2, 2), np.float32)}, tmp_path)
    assert r.returncode == 1 and "unsupported operators: Det (1 node), Hardmax (2 nodes)" in r.stderr


EINSUM_CASES = [
    # (equation, operand shapes): attention as exporters write it, batched and plain products, transposes,
    # diagonals, sums, "..." broadcasting, implicit outputs, upper-case labels and three operands.
    ("bhqd,bhkd->bhqk", [(2, 3, 5, 8), (2, 3, 7, 8)]),
    ("bhqk,bhkd->bhqd", [(2, 3, 5, 7), (2, 3, 7, 8)]),
    ("bij,bjk->bik", [(4, 33, 17), (4, 17, 40)]),
    ("ij,jk", [(6, 5), (5, 4)]),
    ("ij->ji", [(7, 3)]),
    ("bii->bi", [(3, 4, 4)]),
    ("ii", [(5, 5)]),
    ("abc->", [(2, 3, 4)]),
    ("abc->ca", [(2, 3, 4)]),
    ("i,i->", [(9,), (9,)]),
    ("i,j->ij", [(4,), (6,)]),
    ("...ij,...jk->...ik", [(3, 1, 4, 5), (1, 2, 5, 6)]),
    ("b...,b->...", [(3, 2, 4), (3,)]),
    ("Ij,jK->KI", [(3, 4), (4, 5)]),
    ("bn,anm,bm->ba", [(2, 3), (4, 3, 5), (2, 5)]),
    ("bid,bjd->bij", [(1, 1, 1), (1, 1, 1)]),
]


@pytest.mark.parametrize("equation,shapes", EINSUM_CASES, ids=[c[0] for c in EINSUM_CASES])
def test_einsum_matches_ort(tmp_path, equation, shapes):
    names = [f"x{i}" for i in range(len(shapes))]
    node = helper.make_node("Einsum", names, ["y"], equation=equation)
    out_rank = np.einsum(equation, *[np.zeros(s) for s in shapes]).ndim  # onnx 1.12's checker wants a rank
    graph = helper.make_graph([node], "einsum",
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in zip(names, shapes)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["d"] * out_rank)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "einsum.onnx"
    onnx.save(model, str(path))
    rng = np.random.default_rng(len(equation))
    assert_matches_ort(path, {n: rng.standard_normal(s).astype(np.float32) for n, s in zip(names, shapes)}, tmp_path)


def test_einsum_bad_equation_fails_at_load(tmp_path):
    node = helper.make_node("Einsum", ["x"], ["y"], equation="ij->k")
    graph = helper.make_graph([node], "einsum", [helper.make_tensor_value_info("x", TensorProto.FLOAT, (2, 3))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["d"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "einsum.onnx"
    onnx.save(model, str(path))
    r = run_coreserve(path, {"x": np.zeros((2, 3), np.float32)}, tmp_path)
    assert r.returncode != 0
    assert "Einsum" in r.stderr and "output label" in r.stderr, r.stderr
