"""Models already quantized by ONNX Runtime's own tools run on coreserve's integer kernels and match ONNX Runtime
running the same quantized file: quantize_dynamic (DynamicQuantizeLinear + MatMulInteger, QInt8 and QUInt8
weights) and quantize_static in QDQ format (QuantizeLinear / DequantizeLinear around MatMul), on exporter
fixtures."""
import subprocess
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic, quantize_static

from conftest import BINARY
from test_fixtures import inputs_for
from test_runtime_vs_ort import assert_matches_ort

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.mark.parametrize("weight_type", [QuantType.QInt8, QuantType.QUInt8], ids=["qint8", "quint8"])
@pytest.mark.parametrize("name", ["bert_ts_opset17", "gpt2_ts_opset17"])
def test_quantize_dynamic_matches_ort(tmp_path, name, weight_type):
    quantized = tmp_path / "model.int8.onnx"
    quantize_dynamic(str(FIXTURES / f"{name}.onnx"), str(quantized), weight_type=weight_type)
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= {n.op_type for n in onnx.load(str(quantized)).graph.node}
    session = ort.InferenceSession(str(quantized), providers=["CPUExecutionProvider"])
    for batch, seq in [(1, 5), (3, 37)]:
        assert_matches_ort(quantized, inputs_for(session, batch, seq, np.random.default_rng(seq)), tmp_path)


class Reader(CalibrationDataReader):
    def __init__(self, session):
        rng = np.random.default_rng(0)
        self.batches = iter([inputs_for(session, 2, 16, rng) for _ in range(4)])

    def get_next(self):
        return next(self.batches, None)


def test_quantize_static_qdq_matches_ort(tmp_path):
    source = FIXTURES / "bert_ts_opset17.onnx"
    quantized = tmp_path / "model.qdq.onnx"
    reader = Reader(ort.InferenceSession(str(source), providers=["CPUExecutionProvider"]))
    quantize_static(str(source), str(quantized), reader, quant_format=QuantFormat.QDQ, op_types_to_quantize=["MatMul"],
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    session = ort.InferenceSession(str(quantized), providers=["CPUExecutionProvider"])
    ops = {n.op_type for n in onnx.load(str(quantized)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    # Every weight MatMul (Q, K, V, output, FFN in and out: 6 per layer, 2 layers) runs on the integer kernels.
    inspect = subprocess.run([str(BINARY), "inspect", str(quantized)], capture_output=True, text=True, check=True)
    after = inspect.stdout.split("after optimization", 1)[1]
    assert any(line.split() == ["coreserve::MatMulIntegerToFloat", "12"] for line in after.splitlines()), after
    assert_matches_ort(quantized, inputs_for(session, 2, 16, np.random.default_rng(1)), tmp_path)


def test_quantize_static_qdq_conv_matches_ort(tmp_path):
    """quantize_static's QDQ ResNet (u8 activations, s8 weights per output channel): every Conv runs as an integer
    NhwcConv, the Q/DQ/Relu/Add between them stay channels-last (two layout Transposes in all), and the result
    matches ONNX Runtime's own integer execution."""
    source = FIXTURES / "resnet_ts_opset17.onnx"
    quantized = tmp_path / "model.qdq.onnx"
    reader = Reader(ort.InferenceSession(str(source), providers=["CPUExecutionProvider"]))
    quantize_static(str(source), str(quantized), reader, quant_format=QuantFormat.QDQ, op_types_to_quantize=["Conv"],
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True)
    inspect = subprocess.run([str(BINARY), "inspect", str(quantized)], capture_output=True, text=True, check=True)
    after = {line.split()[0]: int(line.split()[1]) for line in inspect.stdout.split("after optimization", 1)[1]
             .splitlines()[1:] if len(line.split()) == 2 and line.split()[1].isdigit()}
    convs = sum(1 for n in onnx.load(str(quantized)).graph.node if n.op_type == "Conv")
    assert after.get("coreserve::NhwcConv") == convs and "Conv" not in after, after
    assert after.get("Transpose") == 2, after
    session = ort.InferenceSession(str(quantized), providers=["CPUExecutionProvider"])
    for batch in (1, 3):
        assert_matches_ort(quantized, inputs_for(session, batch, 16, np.random.default_rng(batch)), tmp_path)
