#!/usr/bin/env python3
"""Makes tests/onnx/torch_cnn.onnx and tests/onnx/torch_cnn.expected: a small CNN built and exported by PyTorch
(Debian's python3-torch: scripts/setup.sh --bench installs it), for tests/test_onnx.cpp, which imports the graph
and checks that ferkit predicts what PyTorch did.

    /usr/bin/python3 scripts/torch_to_onnx.py [OUT_DIR]      (default: tests/onnx)

The network uses what a PyTorch user writes and ferkit can express: the input scaling inside the model, 3x3
convolutions with batch norm, a strided convolution padded as TensorFlow's 'same' (F.pad, then no padding), a
depthwise-separable residual block, one with a max-pooled, zero-padded shortcut, max pooling, nn.Flatten of a
16x6x6 map (C x H x W order), linear layers with 1-D batch norm, dropout and a softmax. Its weights are random
(seeded), its batch-norm statistics too, so a misplaced tensor shows; the inputs are made-up 48x48 patterns (no
FER-2013 image is committed). torch.onnx.export writes opset 13.
"""
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 8, 3, padding=1)
        self.b1 = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 12, 3, stride=2)  # after F.pad(0, 1, 0, 1): TensorFlow's 'same'
        self.b2 = nn.BatchNorm2d(12, eps=1e-3)
        self.dw1 = nn.Conv2d(12, 12, 3, padding=1, groups=12, bias=False)
        self.pw1 = nn.Conv2d(12, 12, 1)
        self.dw2 = nn.Conv2d(12, 12, 3, stride=2, groups=12)
        self.pw2 = nn.Conv2d(12, 16, 1)
        self.flat = nn.Flatten()
        self.fc1 = nn.Linear(16 * 6 * 6, 32)
        self.b3 = nn.BatchNorm1d(32)
        self.drop = nn.Dropout(0.4)
        self.fc2 = nn.Linear(32, 7)
        self.soft = nn.Softmax(dim=1)

    def forward(self, x):
        x = (x / 255.0 - 0.5) / 0.25
        x = F.relu(self.b1(self.c1(x)))
        x = F.relu(self.b2(self.c2(F.pad(x, (0, 1, 0, 1)))))
        x = F.relu(x + self.pw1(self.dw1(x)))                      # 24x24x12, identity shortcut
        s = F.pad(F.max_pool2d(x, 2, 2), (0, 0, 0, 0, 0, 4))       # pooled to 12x12, 12 -> 16 channels
        x = F.relu(s + self.pw2(self.dw2(F.pad(x, (0, 1, 0, 1)))))
        x = F.max_pool2d(x, 2)                                     # 6x6x16
        x = self.drop(F.relu(self.b3(self.fc1(self.flat(x)))))
        return self.soft(self.fc2(x))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "onnx")
    torch.manual_seed(2026)
    net = Net()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.6, 1.4)
                m.bias.uniform_(-0.3, 0.3)
        net.fc2.weight.mul_(40)  # probabilities that differ from face to face
    net.eval()
    n = 16
    g = torch.Generator().manual_seed(7)
    yy, xx = torch.meshgrid(torch.arange(48.0), torch.arange(48.0), indexing="ij")
    faces = []
    for i in range(n):
        a, b, c = torch.rand(3, generator=g) * 6.28
        img = 128 + 90 * torch.sin(xx / (3 + i % 5) + a) * torch.cos(yy / (4 + i % 3) + b) + 30 * torch.sin(c + xx / 9)
        faces.append(img.clamp(0, 255).round())
    x = torch.stack(faces).unsqueeze(1)
    with torch.no_grad():
        probs = net(x)
    torch.onnx.export(net, x, os.path.join(out, "torch_cnn.onnx"), opset_version=13, input_names=["pixels"],
                      output_names=["probabilities"], dynamic_axes={"pixels": {0: "N"}, "probabilities": {0: "N"}})
    with open(os.path.join(out, "torch_cnn.expected"), "wb") as f:
        f.write(struct.pack("<I", n))
        f.write(bytes(x.to(torch.uint8).flatten().tolist()))
        f.write(probs.to(torch.float32).numpy().astype("<f4").tobytes())
    print(f"wrote {out}/torch_cnn.onnx and torch_cnn.expected ({n} inputs; PyTorch {torch.__version__})")
    print("max probability per input:", [round(v, 3) for v in probs.max(1).values.tolist()])


if __name__ == "__main__":
    main()
