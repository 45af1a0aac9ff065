#!/usr/bin/env python3
"""Writes the seed inputs of the fuzz targets into tests/fuzz/corpus/<target>/seed-*: valid requests of each
form the parsers take (so the fuzzer starts from deep inside them), configs, and small ONNX models with the op
patterns of the real exporters. Inputs the fuzzer later finds are added beside them under their own names.

usage: .venv/bin/python tests/fuzz/make_seeds.py
"""
import json
import struct
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from tritonclient.grpc import service_pb2

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).resolve().parent / "corpus"


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / f"seed-{name}").write_bytes(data if isinstance(data, bytes) else data.encode())


def http_seeds():
    """2 bytes of Inference-Header-Content-Length (0xffff: none), then the body."""
    def json_only(name, doc):
        write("http_infer", name, struct.pack("<H", 0xFFFF) + json.dumps(doc).encode())

    json_only("fp32", {"id": "1", "inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 2],
                                             "data": [1.0, 2.5, -3.0, 4.0]}],
                       "outputs": [{"name": "y", "parameters": {"binary_data": False}}]})
    json_only("int64-nested", {"inputs": [{"name": "input_ids", "datatype": "INT64", "shape": [1, 3],
                                           "data": [[101, 2023, 102]]},
                                          {"name": "attention_mask", "datatype": "INT64", "shape": [1, 3],
                                           "data": [[1, 1, 1]]}]})
    json_only("bytes-bool", {"inputs": [{"name": "t", "datatype": "BYTES", "shape": [2], "data": ["ab", "\u00e9"]},
                                        {"name": "b", "datatype": "BOOL", "shape": [1], "data": [True]}],
                             "parameters": {"binary_data_output": True, "priority": 1, "timeout": 1000}})
    json_only("all-types", {"inputs": [{"name": t.lower(), "datatype": t, "shape": [2], "data": [1, 0]}
                                       for t in ("UINT8", "INT8", "UINT16", "INT16", "INT32", "UINT32", "UINT64",
                                                 "FP16", "BF16", "FP64")]})
    header = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 2],
                                     "parameters": {"binary_data_size": 16}},
                                    {"name": "n", "datatype": "INT64", "shape": [1],
                                     "parameters": {"binary_data_size": 8}}],
                         "outputs": [{"name": "y", "parameters": {"binary_data": True}}]}).encode()
    binary = np.arange(4, dtype=np.float32).tobytes() + np.array([7], np.int64).tobytes()
    write("http_infer", "binary", struct.pack("<H", len(header)) + header + binary)
    strings = b"".join(struct.pack("<I", len(s)) + s for s in (b"hello", b"", b"\xff\xfe"))
    header = json.dumps({"inputs": [{"name": "t", "datatype": "BYTES", "shape": [3],
                                     "parameters": {"binary_data_size": len(strings)}}]}).encode()
    write("http_infer", "binary-bytes", struct.pack("<H", len(header)) + header + strings)


def grpc_seeds():
    r = service_pb2.ModelInferRequest(model_name="m", id="7")
    t = r.inputs.add(name="x", datatype="FP32", shape=[2, 2])
    t.contents.fp32_contents.extend([1.0, 2.0, 3.0, 4.0])
    t = r.inputs.add(name="ids", datatype="INT64", shape=[1, 2])
    t.contents.int64_contents.extend([5, 6])
    r.outputs.add(name="y")
    r.parameters["priority"].int64_param = 1
    write("grpc_infer", "typed", r.SerializeToString())

    r = service_pb2.ModelInferRequest(model_name="m")
    r.inputs.add(name="x", datatype="FP32", shape=[3])
    r.inputs.add(name="t", datatype="BYTES", shape=[2])
    r.inputs.add(name="h", datatype="FP16", shape=[2])
    r.raw_input_contents.append(np.ones(3, np.float32).tobytes())
    r.raw_input_contents.append(b"".join(struct.pack("<I", len(s)) + s for s in (b"ab", b"c")))
    r.raw_input_contents.append(np.ones(2, np.float16).tobytes())
    write("grpc_infer", "raw", r.SerializeToString())

    r = service_pb2.ModelInferRequest(model_name="m")
    for name, dtype, field, values in (("b", "BOOL", "bool_contents", [True, False]),
                                       ("i", "INT32", "int_contents", [1, -2]),
                                       ("u", "UINT64", "uint64_contents", [3, 4]),
                                       ("d", "FP64", "fp64_contents", [0.5, 1.5]),
                                       ("s", "BYTES", "bytes_contents", [b"x", b"yz"])):
        t = r.inputs.add(name=name, datatype=dtype, shape=[2])
        getattr(t.contents, field).extend(values)
    write("grpc_infer", "types", r.SerializeToString())


def tfs_seeds():
    """1 byte choosing the signature (0: transformer, 1: image, 2: BYTES + BOOL), then the body."""
    docs = [
        (0, "rows", {"instances": [{"input_ids": [101, 7, 102], "attention_mask": [1, 1, 1]},
                                   {"input_ids": [101, 8, 102], "attention_mask": [1, 1, 0]}]}),
        (0, "columns", {"inputs": {"input_ids": [[101, 7]], "attention_mask": [[1, 1]]}}),
        (1, "image-rows", {"signature_name": "serving_default",
                           "instances": [np.zeros((3, 4, 4)).tolist()]}),
        (1, "image-columns", {"inputs": [np.ones((3, 4, 4)).tolist()]}),
        (2, "bytes", {"instances": [{"text": "hi", "flag": [True, False]}, {"text": {"b64": "aGk="},
                                                                          "flag": [False, True]}]}),
    ]
    for choice, name, doc in docs:
        write("tfs_predict", name, bytes([choice]) + json.dumps(doc).encode())


def config_seeds():
    for path in (ROOT / "config").glob("*.yaml"):
        write("config", path.stem, path.read_bytes())
    write("config", "everything", """
http: {address: 0.0.0.0, port: 9000, tls: {cert_file: a.crt, key_file: a.key, client_ca_file: ca.crt}}
grpc: {port: 9001}
metrics: {port: 9002}
model_repository: [models, /abs]
log_level: debug
shutdown_grace_seconds: 5
max_request_bytes: 1048576
model_control: explicit
model_control_token_file: token
model_poll_seconds: 2
hourly_price: 0.5
model_defaults:
  precision: bf16
  threads: 2
""")
    write("config", "model", """
precision: int8
max_batch_size: 8
max_queue_size: 64
groups: [1, 1]
dynamic_batching:
  preferred_batch_size: [4, 8]
  max_queue_delay_microseconds: 500
  priority_levels: 2
  default_priority_level: 1
  default_timeout_microseconds: 100000
warmup: {batch_sizes: [1, 8]}
version_policy: {latest: 2}
inputs:
  - {name: input_ids, dims: [-1, 128]}
""")
    write("config", "pipeline", "pipeline: {stages: 2}\nshare_cores: true\n")


def model(name, nodes, inputs, outputs, initializers=(), opset=17):
    graph = helper.make_graph(nodes, name, inputs, outputs, [numpy_helper.from_array(v, k) for k, v in initializers])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    onnx.checker.check_model(m)
    write("onnx_load", name, m.SerializeToString())


def onnx_seeds():
    rng = np.random.default_rng(0)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    vi = helper.make_tensor_value_info
    model("add", [helper.make_node("Add", ["x", "b"], ["y"])],
          [vi("x", TensorProto.FLOAT, ["n", 4])], [vi("y", TensorProto.FLOAT, ["n", 4])], [("b", f(4))])
    model("dense_gelu", [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["a"]),
                         helper.make_node("Div", ["a", "s2"], ["d"]), helper.make_node("Erf", ["d"], ["e"]),
                         helper.make_node("Add", ["e", "one"], ["e1"]), helper.make_node("Mul", ["a", "e1"], ["g"]),
                         helper.make_node("Mul", ["g", "half"], ["y"])],
          [vi("x", TensorProto.FLOAT, ["n", "s", 8])], [vi("y", TensorProto.FLOAT, ["n", "s", 16])],
          [("w", f(8, 16)), ("b", f(16)), ("s2", np.array(1.4142135, np.float32)),
           ("one", np.array(1, np.float32)), ("half", np.array(0.5, np.float32))])
    model("layernorm", [helper.make_node("LayerNormalization", ["x", "g", "b"], ["y"], axis=-1, epsilon=1e-5)],
          [vi("x", TensorProto.FLOAT, ["n", 8])], [vi("y", TensorProto.FLOAT, ["n", 8])], [("g", f(8)), ("b", f(8))])
    model("conv_block", [helper.make_node("Conv", ["x", "w", "cb"], ["c"], pads=[1, 1, 1, 1], strides=[1, 1]),
                         helper.make_node("BatchNormalization", ["c", "s", "bb", "m", "v"], ["bn"]),
                         helper.make_node("Relu", ["bn"], ["r"]),
                         helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
                         helper.make_node("GlobalAveragePool", ["p"], ["g"]),
                         helper.make_node("Flatten", ["g"], ["y"])],
          [vi("x", TensorProto.FLOAT, ["n", 3, 8, 8])], [vi("y", TensorProto.FLOAT, ["n", 4])],
          [("w", f(4, 3, 3, 3)), ("cb", f(4)), ("s", f(4)), ("bb", f(4)), ("m", f(4)),
           ("v", np.abs(f(4)) + 1)])
    model("attention_shapes", [
        helper.make_node("Shape", ["x"], ["sh"]),
        helper.make_node("Gather", ["sh", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "ax0"], ["n1"]),
        helper.make_node("Concat", ["n1", "rest"], ["shape"], axis=0),
        helper.make_node("Reshape", ["x", "shape"], ["h"]),
        helper.make_node("Transpose", ["h"], ["q"], perm=[0, 2, 1, 3]),
        helper.make_node("Transpose", ["h"], ["k"], perm=[0, 2, 3, 1]),
        helper.make_node("MatMul", ["q", "k"], ["qk"]),
        helper.make_node("Div", ["qk", "scale"], ["qs"]),
        helper.make_node("Add", ["qs", "mask"], ["qm"]),
        helper.make_node("Softmax", ["qm"], ["p"], axis=-1),
        helper.make_node("MatMul", ["p", "q"], ["o"]),
        helper.make_node("Transpose", ["o"], ["ot"], perm=[0, 2, 1, 3]),
        helper.make_node("Reshape", ["ot", "merge"], ["y"])],
        [vi("x", TensorProto.FLOAT, ["n", 4, 8]), vi("mask", TensorProto.FLOAT, ["n", 1, 1, 4])],
        [vi("y", TensorProto.FLOAT, ["n", 4, 8])],
        [("zero", np.array(0, np.int64)), ("ax0", np.array([0], np.int64)), ("rest", np.array([4, 2, 4], np.int64)),
         ("scale", np.array(2.0, np.float32)), ("merge", np.array([0, 4, 8], np.int64))])
    model("int_ops", [helper.make_node("Cast", ["ids"], ["f"], to=TensorProto.FLOAT),
                      helper.make_node("CumSum", ["ids", "axis"], ["c"]),
                      helper.make_node("Equal", ["ids", "c"], ["eq"]),
                      helper.make_node("Where", ["eq", "f", "f"], ["w"]),
                      helper.make_node("Range", ["start", "limit", "delta"], ["r"]),
                      helper.make_node("ConstantOfShape", ["shape"], ["z"],
                                       value=numpy_helper.from_array(np.array([1.0], np.float32))),
                      helper.make_node("Expand", ["w", "shape"], ["e"]),
                      helper.make_node("Slice", ["e", "starts", "ends"], ["s"]),
                      helper.make_node("ReduceMean", ["s"], ["y"], axes=[1], keepdims=1)],
          [vi("ids", TensorProto.INT64, [2, 3])], [vi("y", TensorProto.FLOAT, [2, 1]),
                                                   vi("r", TensorProto.INT64, [3]), vi("z", TensorProto.FLOAT, [2, 3])],
          [("axis", np.array(1, np.int64)), ("start", np.array(0, np.int64)), ("limit", np.array(5, np.int64)),
           ("delta", np.array(2, np.int64)), ("shape", np.array([2, 3], np.int64)),
           ("starts", np.array([0], np.int64)), ("ends", np.array([2], np.int64))])


if __name__ == "__main__":
    http_seeds()
    grpc_seeds()
    tfs_seeds()
    config_seeds()
    onnx_seeds()
    for d in sorted(CORPUS.iterdir()):
        print(f"{d.name}: {len(list(d.iterdir()))} files")
