#!/usr/bin/env python3
"""Writes coreserve's default model repository: small, real ONNX graphs with deterministic weights.

  bert_tiny    a BERT-style sentence classifier (embeddings, 2 encoder layers with multi-head attention,
               Erf GELU, LayerNormalization, pooler, 2 labels), laid out the way torch.onnx.export writes BERT;
               inputs input_ids / attention_mask / token_type_ids (int64 [batch, sequence]), output logits.
  resnet_tiny  a ResNet-style image classifier (Conv + BatchNormalization + Relu, MaxPool, two residual blocks,
               one with a strided 1x1 projection, GlobalAveragePool, Gemm), input pixel_values
               (float32 [batch, 3, 32, 32]), output logits (float32 [batch, 10]).

Batch and sequence axes are dynamic. Weights come from a seeded generator, so two runs write identical bytes.
Files are written as ONNX IR version 8 / opset 17, which every supported onnx library reads.

usage: make_models.py --out DIR      (writes DIR/<model>/1/model.onnx)
"""
import argparse
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

IR_VERSION = 8
OPSET = 17


class Graph:
    """Collects nodes and initializers; names every value uniquely."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.count = [], [], 0

    def name(self, prefix):
        self.count += 1
        return f"{prefix}_{self.count}"

    def const(self, array, prefix="c"):
        n = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(array), n))
        return n

    def weight(self, shape, scale, prefix="w"):
        return self.const(self.rng.normal(0.0, scale, size=shape).astype(np.float32), prefix)

    def op(self, op_type, inputs, prefix=None, **attrs):
        out = self.name(prefix or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=self.name(op_type), **attrs))
        return out


def bert(name="bert_tiny", vocab=1000, hidden=64, heads=4, layers=2, ffn=128, max_pos=128, labels=2, seed=20261121):
    head_dim = hidden // heads
    g = Graph(seed=seed)

    seq_len = g.op("Shape", ["input_ids"], start=1, end=2)
    positions = g.const(np.arange(max_pos, dtype=np.int64).reshape(1, max_pos), "position_ids")
    pos_ids = g.op("Slice", [positions, g.const(np.array([0], np.int64)), seq_len, g.const(np.array([1], np.int64))])
    emb = g.op("Add", [g.op("Gather", [g.weight((vocab, hidden), 0.5, "word_embeddings"), "input_ids"]),
                       g.op("Gather", [g.weight((max_pos, hidden), 0.5, "position_embeddings"), pos_ids])])
    emb = g.op("Add", [emb, g.op("Gather", [g.weight((2, hidden), 0.5, "token_type_embeddings"), "token_type_ids"])])

    def layer_norm(x):
        gamma = g.const((1.0 + g.rng.normal(0, 0.1, hidden)).astype(np.float32), "ln_gamma")
        beta = g.weight((hidden,), 0.1, "ln_beta")
        return g.op("LayerNormalization", [x, gamma, beta], axis=-1, epsilon=1e-12)

    def dense(x, n_in, n_out):
        return g.op("Add", [g.op("MatMul", [x, g.weight((n_in, n_out), n_in ** -0.5)]), g.weight((n_out,), 0.1, "b")])

    x = layer_norm(emb)
    # Padding mask as the exporters write it: (1 - mask) * large negative, broadcast over heads and queries.
    mask = g.op("Cast", [g.op("Unsqueeze", ["attention_mask", g.const(np.array([1, 2], np.int64))])],
                to=TensorProto.FLOAT)
    mask = g.op("Mul", [g.op("Sub", [g.const(np.float32(1.0)), mask]), g.const(np.float32(-10000.0))])
    split_heads = g.const(np.array([0, 0, heads, head_dim], np.int64), "split_heads")
    merge_heads = g.const(np.array([0, 0, hidden], np.int64), "merge_heads")

    for _ in range(layers):
        q = g.op("Transpose", [g.op("Reshape", [dense(x, hidden, hidden), split_heads])], perm=[0, 2, 1, 3])
        k = g.op("Transpose", [g.op("Reshape", [dense(x, hidden, hidden), split_heads])], perm=[0, 2, 3, 1])
        v = g.op("Transpose", [g.op("Reshape", [dense(x, hidden, hidden), split_heads])], perm=[0, 2, 1, 3])
        scores = g.op("Div", [g.op("MatMul", [q, k]), g.const(np.float32(np.sqrt(head_dim)))])
        probs = g.op("Softmax", [g.op("Add", [scores, mask])], axis=-1)
        context = g.op("Transpose", [g.op("MatMul", [probs, v])], perm=[0, 2, 1, 3])
        context = g.op("Reshape", [context, merge_heads])
        x = layer_norm(g.op("Add", [dense(context, hidden, hidden), x]))
        h = dense(x, hidden, ffn)
        # GELU, exact (Erf) form: h * 0.5 * (1 + erf(h / sqrt(2)))
        erf = g.op("Erf", [g.op("Div", [h, g.const(np.float32(np.sqrt(2.0)))])])
        h = g.op("Mul", [g.op("Mul", [h, g.const(np.float32(0.5))]), g.op("Add", [erf, g.const(np.float32(1.0))])])
        x = layer_norm(g.op("Add", [dense(h, ffn, hidden), x]))

    cls = g.op("Gather", [x, g.const(np.array(0, np.int64))], axis=1)
    pooled = g.op("Tanh", [dense(cls, hidden, hidden)])
    logits = dense(pooled, hidden, labels)
    g.nodes.append(helper.make_node("Identity", [logits], ["logits"], name="output"))

    ids = ["batch", "sequence"]
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT64, ids)
              for n in ("input_ids", "attention_mask", "token_type_ids")]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", labels])]
    return helper.make_graph(g.nodes, name, inputs, outputs, g.inits)


def resnet_tiny():
    g = Graph(seed=20261122)

    def conv_bn(x, c_in, c_out, k, stride=1, relu=True):
        w = g.weight((c_out, c_in, k, k), (2.0 / (c_in * k * k)) ** 0.5, "conv_w")
        pad = k // 2
        y = g.op("Conv", [x, w], kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4)
        scale = g.const((1.0 + g.rng.normal(0, 0.1, c_out)).astype(np.float32), "bn_scale")
        bias = g.weight((c_out,), 0.1, "bn_bias")
        mean = g.weight((c_out,), 0.1, "bn_mean")
        var = g.const(g.rng.uniform(0.5, 1.5, c_out).astype(np.float32), "bn_var")
        y = g.op("BatchNormalization", [y, scale, bias, mean, var], epsilon=1e-5)
        return g.op("Relu", [y]) if relu else y

    x = conv_bn("pixel_values", 3, 16, 3)
    x = g.op("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
    # Residual block with an identity shortcut.
    y = conv_bn(conv_bn(x, 16, 16, 3), 16, 16, 3, relu=False)
    x = g.op("Relu", [g.op("Add", [y, x])])
    # Residual block that halves the resolution, with a strided 1x1 projection shortcut.
    y = conv_bn(conv_bn(x, 16, 32, 3, stride=2), 32, 32, 3, relu=False)
    x = g.op("Relu", [g.op("Add", [y, conv_bn(x, 16, 32, 1, stride=2, relu=False)])])
    x = g.op("Flatten", [g.op("GlobalAveragePool", [x])], axis=1)
    w = g.weight((10, 32), 32 ** -0.5, "fc_w")
    g.nodes.append(helper.make_node("Gemm", [x, w, g.weight((10,), 0.1, "fc_b")], ["logits"], name="fc", transB=1))

    inputs = [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", 3, 32, 32])]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])]
    return helper.make_graph(g.nodes, "resnet_tiny", inputs, outputs, g.inits)


MODELS = {"bert_tiny": bert, "resnet_tiny": resnet_tiny}


def build(name):
    model = helper.make_model(MODELS[name](), producer_name="coreserve-make-models", producer_version="1",
                              opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="repository folder to write")
    args = parser.parse_args(argv)
    for name in MODELS:
        path = os.path.join(args.out, name, "1", "model.onnx")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(build(name).SerializeToString(deterministic=True))
        os.replace(tmp, path)  # readers never see a half-written model
        print(f"make_models: wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main(sys.argv[1:])
