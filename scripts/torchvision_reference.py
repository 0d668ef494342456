#!/usr/bin/env python3
"""Reference figures and parity fixtures for opt-arch, made with torch and torchvision.

    pip install torch torchvision safetensors
    python3 scripts/torchvision_reference.py            # writes crates/opt-arch/tests/fixtures/

Writes, into crates/opt-arch/tests/fixtures/:
- torchvision_reference.json: for every torchvision family at 224x224, 3 channels, 1000 classes,
  the parameter count (PyTorch convention: no batch-norm running statistics), the MACs of one
  image counted with forward hooks (conv: out_h*out_w*out_c*in_c/groups*k*k, linear: in*out;
  1 multiply-accumulate = 1 MAC), and the state-dict names with their shapes;
- parity_<name>.safetensors: weights of a reduced-size model (random init, then random batch-norm
  statistics and affine parameters so that batch norm is not the identity, and unit-scale linear
  layers so the logits are of order 1), in torchvision's
  names; parity_<name>_io.safetensors: an input batch and torchvision's output in eval mode.
Nothing is downloaded: all weights are random.
"""
import json
import math
import os

import torch
from safetensors.torch import save_file
from torchvision import models
from torchvision.models import efficientnet as tv_eff

OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "opt-arch", "tests", "fixtures")
FAMILIES = ["mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"] + [
    f"efficientnet_b{i}" for i in range(8)
]


def count_macs(model, size):
    macs = 0

    def conv_hook(m, _inp, out):
        nonlocal macs
        k = m.kernel_size[0] * m.kernel_size[1]
        macs += out.shape[2] * out.shape[3] * m.out_channels * (m.in_channels // m.groups) * k

    def linear_hook(m, _inp, _out):
        nonlocal macs
        macs += m.in_features * m.out_features

    hooks = []
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, torch.nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    for h in hooks:
        h.remove()
    return macs


def reference():
    table = {}
    for name in FAMILIES:
        model = getattr(models, name)()
        table[name] = {
            "params": sum(p.numel() for p in model.parameters()),
            "macs_224": count_macs(model, 224),
            "state_dict": {k: list(v.shape) for k, v in model.state_dict().items()},
        }
        print(name, table[name]["params"], table[name]["macs_224"])
    with open(os.path.join(OUT, "torchvision_reference.json"), "w") as f:
        json.dump(table, f, indent=0, sort_keys=True)


def randomize_bn(model, gen):
    """Random batch-norm statistics and affine parameters, and unit-scale linear layers
    (torchvision initializes them with std 0.01, which would make the logits tiny)."""
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            m.weight.data = torch.randn(m.weight.shape, generator=gen) / math.sqrt(m.in_features)
            m.bias.data = torch.randn(m.out_features, generator=gen) * 0.1
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.weight.data = torch.rand(n, generator=gen) + 0.5
            m.bias.data = torch.randn(n, generator=gen) * 0.1
            m.running_mean.data = torch.randn(n, generator=gen) * 0.1
            m.running_var.data = torch.rand(n, generator=gen) + 0.5


def parity(name, model, size):
    gen = torch.Generator().manual_seed(7)
    randomize_bn(model, gen)
    model.eval()
    x = torch.randn(2, 3, size, size, generator=gen)
    with torch.no_grad():
        y = model(x)
    save_file(model.state_dict(), os.path.join(OUT, f"parity_{name}.safetensors"))
    save_file({"input": x, "output": y}, os.path.join(OUT, f"parity_{name}_io.safetensors"))
    params = sum(p.numel() for p in model.parameters())
    print(f"parity {name}: {params} params, input {list(x.shape)}, output {list(y.shape)}")


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    reference()
    # Reduced sizes keep the fixtures to a few MB: width 0.35 / 0.25 / 0.5, 10 classes, 64x64.
    parity("mobilenet_v2", models.mobilenet_v2(width_mult=0.35, num_classes=10), 64)
    setting, last = tv_eff._efficientnet_conf("efficientnet_b0", width_mult=0.25, depth_mult=1.0)
    parity("efficientnet_b0", tv_eff.EfficientNet(setting, 0.2, num_classes=10, last_channel=last), 64)
    from torchvision.models import mobilenetv3 as tv_v3

    setting, last = tv_v3._mobilenet_v3_conf("mobilenet_v3_small", width_mult=0.5)
    parity("mobilenet_v3_small", tv_v3.MobileNetV3(setting, last, num_classes=10), 64)


if __name__ == "__main__":
    main()
