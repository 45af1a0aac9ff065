#!/usr/bin/env python3
"""Exports the runtime's test fixtures with the real exporters our users use, in small configurations.

Run once by a developer (not by the build or CI), with the export environment:
    python3 -m venv .venv-export && .venv-export/bin/pip install -r scripts/requirements-export.txt
    .venv-export/bin/python scripts/make_fixtures.py --out tests/fixtures
The .onnx files it writes are committed (each well under 5 MB); tests/e2e/test_fixtures.py runs them through
coreserve and ONNX Runtime. Weights are random (seeded): no download, no hub.

Each architecture is exported by
  - torch.onnx.export, TorchScript-based (dynamo=False), opset 14 and 17;
  - torch.onnx.export, dynamo-based (dynamo=True), the exporter's default opset;
  - for the BERT family, the opset-17 export again after ONNX Runtime's transformer optimizer (com.microsoft fused
    operators: Attention, SkipLayerNormalization, EmbedLayerNormalization, BiasGelu, ...).
"""
import argparse
import os
import sys

import torch
import torchvision
import transformers

TEXT = {  # name -> (model class, config class, config kwargs)
    "bert": (transformers.BertForSequenceClassification, transformers.BertConfig,
             dict(vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                  max_position_embeddings=128, num_labels=2)),
    "roberta": (transformers.RobertaForSequenceClassification, transformers.RobertaConfig,
                dict(vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=128, max_position_embeddings=130, num_labels=2)),
    "distilbert": (transformers.DistilBertForSequenceClassification, transformers.DistilBertConfig,
                   dict(vocab_size=1000, dim=64, n_layers=2, n_heads=4, hidden_dim=128, max_position_embeddings=128,
                        num_labels=2)),
    "gpt2": (transformers.GPT2LMHeadModel, transformers.GPT2Config,
             dict(vocab_size=1000, n_embd=64, n_layer=2, n_head=4, n_positions=128, use_cache=False)),
}
ORT_MODEL_TYPE = {"bert": "bert", "roberta": "bert", "distilbert": "bert"}


class TinyResNet(torch.nn.Module):
    """torchvision's ResNet-50 building blocks (7x7 stem, max pool, Bottleneck blocks with strided 1x1
    projections, global average pool, fully connected) at a fraction of the width, so the export is small."""

    def __init__(self):
        super().__init__()
        from torchvision.models.resnet import Bottleneck, conv1x1
        bn = torch.nn.BatchNorm2d
        self.stem = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 7, 2, 3, bias=False), bn(16), torch.nn.ReLU(),
                                        torch.nn.MaxPool2d(3, 2, 1))
        blocks, inplanes = [], 16
        for planes, stride in ((8, 1), (16, 2), (32, 2)):
            down = torch.nn.Sequential(conv1x1(inplanes, planes * 4, stride), bn(planes * 4))
            blocks += [Bottleneck(inplanes, planes, stride, down), Bottleneck(planes * 4, planes)]
            inplanes = planes * 4
        self.blocks = torch.nn.Sequential(*blocks)
        self.fc = torch.nn.Linear(inplanes, 10)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.fc(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1))


class Logits(torch.nn.Module):
    """Wraps a Hugging Face model so the export has plain tensor inputs and one `logits` output."""

    def __init__(self, model, names):
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *args):
        return self.model(**dict(zip(self.names, args))).logits


def export(module, args, names, path, opset, dynamo, dynamic):
    kwargs = dict(input_names=names, output_names=["logits"], opset_version=opset, dynamo=dynamo)
    if dynamo:
        # forward(*args): one positional entry holding the per-input specs
        kwargs["dynamic_shapes"] = (tuple({d: torch.export.Dim.AUTO for d in axes} for axes in dynamic),)
    else:
        kwargs["dynamic_axes"] = {**{n: {d: f"d{d}" for d in axes} for n, axes in zip(names, dynamic)},
                                  "logits": {0: "batch"}}
    torch.onnx.export(module, args, path, **kwargs)
    size = os.path.getsize(path)
    assert size < 5 * 1024 * 1024, f"{path} is {size} bytes"
    print(f"make_fixtures: wrote {path} ({size} bytes)")


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    torch.manual_seed(0)
    for name, (model_cls, config_cls, kwargs) in TEXT.items():
        model = model_cls(config_cls(**kwargs)).eval()
        names = ["input_ids", "attention_mask"] + (["token_type_ids"] if name == "bert" else [])
        ids = torch.randint(0, 1000, (2, 16))
        args = tuple([ids, torch.ones_like(ids)] + ([torch.zeros_like(ids)] if name == "bert" else []))
        module = Logits(model, names).eval()
        dynamic = [(0, 1)] * len(names)
        for opset in (14, 17):
            export(module, args, names, f"{a.out}/{name}_ts_opset{opset}.onnx", opset, False, dynamic)
        export(module, args, names, f"{a.out}/{name}_dynamo.onnx", None, True, dynamic)
        if name in ORT_MODEL_TYPE:
            from onnxruntime.transformers import optimizer
            hidden = kwargs.get("hidden_size", kwargs.get("dim"))
            heads = kwargs.get("num_attention_heads", kwargs.get("n_heads"))
            opt = optimizer.optimize_model(f"{a.out}/{name}_ts_opset17.onnx", model_type=ORT_MODEL_TYPE[name],
                                           num_heads=heads, hidden_size=hidden, opt_level=1)
            path = f"{a.out}/{name}_ort_optimized.onnx"
            opt.save_model_to_file(path)
            print(f"make_fixtures: wrote {path} ({os.path.getsize(path)} bytes)")
    resnet = TinyResNet().eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so folding them is tested
        for m in resnet.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    x = torch.randn(2, 3, 64, 64)
    for opset in (14, 17):
        torch.onnx.export(resnet, (x,), f"{a.out}/resnet_ts_opset{opset}.onnx", input_names=["pixel_values"],
                          output_names=["logits"], opset_version=opset, dynamo=False,
                          dynamic_axes={"pixel_values": {0: "batch"}, "logits": {0: "batch"}})
        print(f"make_fixtures: wrote {a.out}/resnet_ts_opset{opset}.onnx")
    torch.onnx.export(resnet, (x,), f"{a.out}/resnet_dynamo.onnx", input_names=["pixel_values"],
                      output_names=["logits"], dynamo=True,
                      dynamic_shapes=({0: torch.export.Dim.AUTO},))
    print(f"make_fixtures: wrote {a.out}/resnet_dynamo.onnx")


if __name__ == "__main__":
    main(sys.argv[1:])
