#!/usr/bin/env python3
"""Writes the full-size benchmark models with the real exporter (torch.onnx.export, TorchScript, opset 17) and
random weights (no download): bert_base, distilbert, roberta_base (sequence classification, 2 labels), gpt2
(124M, causal-LM logits, no KV cache), resnet50 (torchvision) and minilm (a BERT of MiniLM-L6-H384's size). Each goes to OUT/<name>/1/model.onnx; models
already there are kept.

usage: make_bench_models.py --out DIR   (run with the export environment, .venv-export)
"""
import argparse
import os
import sys

import torch
import torchvision
import transformers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import Logits  # noqa: E402  (the same plain-tensor wrapper the fixtures use)


def text(name):
    if name == "minilm":  # MiniLM-L6-H384's shape: 6 layers, hidden 384, 12 heads, FFN 1536
        return transformers.BertForSequenceClassification(transformers.BertConfig(
            hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536, num_labels=2)), True
    if name == "bert_base":
        return transformers.BertForSequenceClassification(transformers.BertConfig(num_labels=2)), True
    if name == "distilbert":
        return transformers.DistilBertForSequenceClassification(transformers.DistilBertConfig(num_labels=2)), False
    if name == "roberta_base":
        return transformers.RobertaForSequenceClassification(transformers.RobertaConfig(
            vocab_size=50265, max_position_embeddings=514, type_vocab_size=1, num_labels=2)), False
    return transformers.GPT2LMHeadModel(transformers.GPT2Config(use_cache=False)), False


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    torch.manual_seed(0)
    for name in ("bert_base", "distilbert", "roberta_base", "gpt2", "resnet50", "minilm"):
        path = os.path.join(a.out, name, "1", "model.onnx")
        if os.path.exists(path):
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if name == "resnet50":
            model = torchvision.models.resnet50(weights=None).eval()
            torch.onnx.export(model, (torch.randn(1, 3, 224, 224),), path, input_names=["pixel_values"],
                              output_names=["logits"], opset_version=17, dynamo=False,
                              dynamic_axes={"pixel_values": {0: "batch"}, "logits": {0: "batch"}})
        else:
            model, types = text(name)
            names = ["input_ids", "attention_mask"] + (["token_type_ids"] if types else [])
            ids = torch.randint(0, 1000, (1, 128))
            args = tuple([ids, torch.ones_like(ids)] + ([torch.zeros_like(ids)] if types else []))
            axes = {n: {0: "batch", 1: "sequence"} for n in names}
            axes["logits"] = {0: "batch"} if name != "gpt2" else {0: "batch", 1: "sequence"}
            torch.onnx.export(Logits(model.eval(), names).eval(), args, path, input_names=names,
                              output_names=["logits"], opset_version=17, dynamo=False, dynamic_axes=axes)
        print(f"make_bench_models: wrote {path} ({os.path.getsize(path) >> 20} MB)", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
