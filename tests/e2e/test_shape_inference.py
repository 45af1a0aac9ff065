"""The runtime's own shape inference (runtime/shape_inference.cc) on every exporter fixture, with the file's
intermediate shapes removed and its output dims made symbolic, so that what `coreserve inspect --values` shows was
inferred:
- against what flows: ONNX Runtime runs the same file at two input sizes with every intermediate made an output;
  every type coreserve infers is the one that flows, every rank too, and every dim it infers as static has that
  size in both runs;
- against the onnx package's own inference (the newest on PyPI, with data propagation): coreserve knows at least
  what that knows, the type, the rank and every static dim of each value;
- and it knows the type and rank of every value of these models (which is what the optimizer decides by)."""
import re
import subprocess
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnxruntime.quantization import QuantType, quantize_dynamic

from conftest import BINARY
from test_fixtures import inputs_for

FIXTURES_DIR = Path(__file__).resolve().parents[1] / "fixtures"
FIXTURES = sorted(FIXTURES_DIR.glob("*.onnx"))
V2_NAMES = {"FLOAT": "FP32", "DOUBLE": "FP64", "FLOAT16": "FP16", "BFLOAT16": "BF16", "INT64": "INT64",
            "INT32": "INT32", "INT8": "INT8", "UINT8": "UINT8", "BOOL": "BOOL"}


def v2_name(elem_type):
    return V2_NAMES.get(onnx.TensorProto.DataType.Name(elem_type))


def stripped(model):
    """The model without its intermediate shapes, and with every output dim declared symbolic (the onnx 1.12
    checker wants outputs to keep a type and a rank)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    del m.graph.value_info[:]
    for output in m.graph.output:
        for d, dim in enumerate(output.type.tensor_type.shape.dim):
            dim.dim_param = f"{output.name}_{d}"
    return m


def inferred_values(path):
    """name -> (V2 type or None, shape as a list with None for unknown dims, or None when the rank is unknown)."""
    r = subprocess.run([str(BINARY), "inspect", str(path), "--values"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    section = r.stdout.split("\nvalues:\n", 1)[1]
    values = {}
    for line in section.splitlines():
        m = re.fullmatch(r"  (\S+)\s+(\S+)\s+(\?|\[.*\])", line)
        if m is None:
            break
        name, dtype, shape = m.groups()
        dims = None if shape == "?" else [None if d == "?" else int(d) for d in shape[1:-1].split(", ") if d]
        values[name] = (None if dtype == "INVALID" else dtype, dims)
    return values


def flowing_shapes(model, names, types, feeds_list):
    """name -> [(numpy dtype, shape) per run], from ONNX Runtime with every named value made an output."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    del m.graph.output[:]
    for name in names:
        m.graph.output.append(onnx.helper.make_tensor_value_info(name, types[name], None))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(m.SerializeToString(), options, providers=["CPUExecutionProvider"])
    runs = [session.run(names, feeds) for feeds in feeds_list]
    return {name: [(run[i].dtype, run[i].shape) for run in runs] for i, name in enumerate(names)}


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.stem)
def test_inferred_shapes_match_what_flows_and_the_onnx_reference(fixture, tmp_path):
    check_inferred_shapes(onnx.load(str(fixture)), tmp_path)


def test_inferred_shapes_of_a_dynamically_quantized_model(tmp_path):
    quantized = tmp_path / "quantized.onnx"
    quantize_dynamic(str(FIXTURES_DIR / "bert_ts_opset17.onnx"), str(quantized), weight_type=QuantType.QInt8)
    check_inferred_shapes(onnx.load(str(quantized)), tmp_path)


def check_inferred_shapes(original, tmp_path):
    model = stripped(original)
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path))
    ours = inferred_values(path)
    assert ours, "inspect --values listed nothing"

    # Every value has a known type and rank.
    unknown = [name for name, (dtype, dims) in ours.items() if dtype is None or dims is None]
    assert not unknown, f"{len(unknown)} values without an inferred type or rank, e.g. {unknown[:5]}"

    # What flows, at two input sizes.
    onnx_type = {"FP32": onnx.TensorProto.FLOAT, "INT64": onnx.TensorProto.INT64, "INT32": onnx.TensorProto.INT32,
                 "BOOL": onnx.TensorProto.BOOL, "UINT8": onnx.TensorProto.UINT8, "INT8": onnx.TensorProto.INT8}
    names = sorted(ours)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = [inputs_for(session, 2, 7, rng), inputs_for(session, 3, 12, rng)]
    flows = flowing_shapes(model, names, {n: onnx_type[ours[n][0]] for n in names}, feeds)
    for name in names:
        dtype, dims = ours[name]
        for got_dtype, got_shape in flows[name]:
            assert v2_name(onnx.helper.np_dtype_to_tensor_dtype(got_dtype)) == dtype, (name, dtype, got_dtype)
            assert len(got_shape) == len(dims), (name, dims, got_shape)
            for d, (want, got) in enumerate(zip(dims, got_shape)):
                assert want is None or want == got, (name, d, dims, got_shape)

    # At least what the onnx package infers.
    reference = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    compared = 0
    for info in list(reference.graph.value_info) + list(reference.graph.output):
        if info.name not in ours or not info.type.HasField("tensor_type"):
            continue
        tensor = info.type.tensor_type
        dtype, dims = ours[info.name]
        if tensor.elem_type:
            assert dtype == v2_name(tensor.elem_type), (info.name, dtype, tensor.elem_type)
        if tensor.HasField("shape"):
            compared += 1
            assert len(dims) == len(tensor.shape.dim), (info.name, dims, tensor.shape)
            for d, dim in enumerate(tensor.shape.dim):
                if dim.HasField("dim_value"):
                    assert dims[d] == dim.dim_value, (info.name, d, dims, tensor.shape)
    assert compared > 0
