"""Teachers dfad was never tuned on, trained the way a user would: plain PyTorch loops, their own
model classes, saved as the files a user would hand to `dfad distill` (.pt2 or TorchScript).

    python results/foreign/train_teachers.py NAME --data-root DATA --out DIR [--threads N]

NAME: lenet5_fmnist | lenet5_mnist_tune, vgg_fmnist_tune (tuning only) | vggbn_mnist | vggbn_fmnist | tv_resnet18_fmnist | resnet20_cifar10. Writes DIR/NAME.pt2
(or .ts) and DIR/NAME.json (test accuracy, wall time, input facts, the machine). The data are read
with dfad's dataset readers only for convenience (in-memory tensors); the models and the training
are the user's own.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from dfad.data import DATASETS

MNIST_STATS = ((0.1307,), (0.3081,))
HALF_STATS = ((0.5,), (0.5,))
CIFAR_STATS = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))


class LeNet5(nn.Module):
    """The classic LeNet-5 on 28x28 inputs (ReLU, max pooling), no BatchNorm."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(),
                                        nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


class VGGBN(nn.Module):
    """A small VGG-style network with BatchNorm: three blocks of two 3x3 convolutions."""

    def __init__(self, widths=(32, 64, 128), batchnorm: bool = True):
        super().__init__()
        norm2d = nn.BatchNorm2d if batchnorm else (lambda _: nn.Identity())
        layers, c = [], 1
        for w in widths:
            layers += [nn.Conv2d(c, w, 3, padding=1, bias=not batchnorm), norm2d(w), nn.ReLU(inplace=True),
                       nn.Conv2d(w, w, 3, padding=1, bias=not batchnorm), norm2d(w), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]
            c = w
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(c * 3 * 3, 256),
                                        nn.BatchNorm1d(256) if batchnorm else nn.Identity(),
                                        nn.ReLU(inplace=True), nn.Linear(256, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


class ShortcutA(nn.Module):
    """He et al.'s option-A shortcut: subsample and zero-pad channels (no parameters)."""

    def __init__(self, extra: int):
        super().__init__()
        self.extra = extra

    def forward(self, x):
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.short = ShortcutA(cout - cin) if stride != 1 or cin != cout else nn.Identity()

    def forward(self, x):
        y = F.relu(self.b1(self.c1(x)))
        return F.relu(self.b2(self.c2(y)) + self.short(x))


class ResNet20(nn.Module):
    """CIFAR ResNet-20 as in He et al. 2016 (option-A shortcuts), written from the paper."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        blocks, c = [], 16
        for w, s in ((16, 1), (32, 2), (64, 2)):
            for i in range(3):
                blocks.append(Block(c, w, s if i == 0 else 1))
                c = w
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1).flatten(1))


def tv_resnet18_gray():
    """torchvision's ResNet-18 with a one-channel stem, as users adapt it to grayscale images."""
    model = torchvision.models.resnet18(num_classes=10)
    model.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    return model


# name: (model factory, dataset, size, (mean, std), epochs, batch, optimiser, lr, augment, saved form)
TEACHERS = {
    "lenet5_fmnist": (LeNet5, "fashion_mnist", 28, HALF_STATS, 10, 128, "adam", 1e-3, False, "ts"),
    # A tuning teacher (not held out): the held-out LeNet-5's recipe on MNIST.
    "lenet5_mnist_tune": (LeNet5, "mnist", 28, HALF_STATS, 10, 128, "adam", 1e-3, False, "ts"),
    "vggbn_mnist": (VGGBN, "mnist", 28, MNIST_STATS, 3, 128, "adam", 1e-3, False, "pt2"),
    # A tuning teacher without BatchNorm, of another family than the held-out LeNet-5.
    "vgg_fmnist_tune": (lambda: VGGBN(batchnorm=False), "fashion_mnist", 28, HALF_STATS, 3, 128, "adam", 1e-3, False, "ts"),
    "vggbn_fmnist": (VGGBN, "fashion_mnist", 28, HALF_STATS, 3, 128, "adam", 1e-3, False, "pt2"),
    "tv_resnet18_fmnist": (tv_resnet18_gray, "fashion_mnist", 28, HALF_STATS, 3, 128, "sgd", 0.05, False, "pt2"),
    "resnet20_cifar10": (ResNet20, "cifar10", 32, CIFAR_STATS, 12, 128, "sgd", 0.1, True, "pt2"),
}


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random 4-pixel shifts (reflect-padded crops) and horizontal flips."""
    n, _, h, w = x.shape
    padded = F.pad(x, (4, 4, 4, 4), mode="reflect")
    dx, dy = torch.randint(0, 9, (2,), generator=gen).tolist()
    x = padded[:, :, dy:dy + h, dx:dx + w]
    flip = torch.rand(n, generator=gen) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    hits = sum(int((model(images[i:i + 1000]).argmax(1) == labels[i:i + 1000]).sum())
               for i in range(0, len(labels), 1000))
    return hits / len(labels)


def cpu_name() -> str:
    flags = Path("/proc/cpuinfo").read_text()
    name = next((l.split(":", 1)[1].strip() for l in flags.splitlines() if l.startswith("model name")), platform.processor())
    bf16 = [f for f in ("amx_bf16", "avx512_bf16") if f in flags]
    return f"{name} ({', '.join(bf16) or 'no native bf16'})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=sorted(TEACHERS))
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    factory, dataset, size, (mean, std), epochs, batch, opt_name, lr, aug, form = TEACHERS[args.name]
    train = DATASETS.get(dataset)(args.data_root, train=True, image_size=size, mean=mean, std=std)
    test = DATASETS.get(dataset)(args.data_root, train=False, image_size=size, mean=mean, std=std)
    model = factory()
    steps = epochs * ((len(train) + batch - 1) // batch)
    if opt_name == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    gen = torch.Generator().manual_seed(args.seed)
    start = time.time()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(train), generator=gen)
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            x, y = train.images[idx], train.labels[idx]
            if aug:
                x = augment(x, gen)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        print(f"{args.name} epoch {epoch + 1}/{epochs}: loss {loss.item():.3f}, test "
              f"{accuracy(model, test.images, test.labels):.4f}, {time.time() - start:.0f} s", flush=True)
    wall = time.time() - start
    acc = accuracy(model, test.images, test.labels)
    model.eval()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    example = test.images[:4]
    if form == "pt2":
        path = out / f"{args.name}.pt2"
        program = torch.export.export(model, (example,), dynamic_shapes=({0: torch.export.Dim("batch", min=1)},))
        torch.export.save(program, str(path))
    else:
        path = out / f"{args.name}.ts"
        torch.jit.save(torch.jit.script(model), str(path))
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    facts = {"name": args.name, "file": path.name, "dataset": dataset, "input_shape": [train.images.shape[1], size, size],
             "mean": list(mean), "std": list(std), "test_accuracy": acc, "epochs": epochs, "batch": batch,
             "optimizer": opt_name, "lr": lr, "augment": aug, "seed": args.seed, "wall_s": round(wall, 1),
             "threads": args.threads, "cpu": cpu_name(), "torch": torch.__version__, "git": commit,
             "params": sum(p.numel() for p in model.parameters())}
    (out / f"{args.name}.json").write_text(json.dumps(facts, indent=2) + "\n")
    print(json.dumps(facts))


if __name__ == "__main__":
    main()
