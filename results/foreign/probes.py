"""Two quick probes quoted in results/foreign/README.md, written to probes.json:

1. The teacher's top-class share on 256 samples of a fresh (untrained) generator_a, ngf 32, seed 0.
2. L1 imitation of `lenet5_fmnist` on its *real* training images (KD-ORI-like), 150 steps of batch
   256, per student and optimiser: test accuracy on the first 2,000 test images.

    python results/foreign/probes.py --teachers /tmp/foreign --data-root DATA --out results/foreign/probes.json
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch

from dfad.data import DATASETS
from dfad.models import build_model

sys.path.insert(0, str(Path(__file__).parent))
from train_teachers import cpu_name  # noqa: E402

warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit.load


def load(teachers: Path, facts: dict):
    path = teachers / facts["file"]
    return torch.jit.load(str(path)).eval() if path.suffix == ".ts" else torch.export.load(str(path)).module()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--teachers", required=True, type=Path)
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(2)
    start = time.time()
    shares = {}
    for name in ("lenet5_fmnist", "vggbn_mnist", "tv_resnet18_fmnist", "resnet20_cifar10"):
        facts = json.loads((args.teachers / f"{name}.json").read_text())
        channels, size, _ = facts["input_shape"]
        torch.manual_seed(0)
        generator = build_model("generator_a", nz=100, ngf=32, channels=channels, image_size=size).train()
        with torch.no_grad():
            classes = load(args.teachers, facts)(generator(torch.randn(256, 100))).argmax(1)
        counts = torch.bincount(classes, minlength=10)
        shares[name] = {"top_class_share": counts.max().item() / 256, "counts": counts.tolist()}
    facts = json.loads((args.teachers / "lenet5_fmnist.json").read_text())
    teacher = load(args.teachers, facts)
    read = DATASETS.get("fashion_mnist")
    train = read(args.data_root, train=True, image_size=28, mean=facts["mean"], std=facts["std"])
    test = read(args.data_root, train=False, image_size=28, mean=facts["mean"], std=facts["std"])
    imitation = []
    for arch, optimiser, lr in (("convnet", "sgd", 0.01), ("convnet", "sgd", 0.1), ("convnet", "adam", 1e-3),
                                ("convnet", "adam", 3e-3), ("cifar_resnet8", "sgd", 0.01), ("cifar_resnet8", "sgd", 0.1),
                                ("cifar_resnet8", "adam", 1e-3)):
        torch.manual_seed(0)
        student = build_model(arch, num_classes=10, in_channels=1)
        opt = (torch.optim.Adam(student.parameters(), lr=lr) if optimiser == "adam" else
               torch.optim.SGD(student.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4))
        for _ in range(150):
            x = train.images[torch.randint(0, len(train), (256,))]
            with torch.no_grad():
                target = teacher(x)
            loss = (student(x) - target).abs().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        student.eval()
        with torch.no_grad():
            accuracy = (student(test.images[:2000]).argmax(1) == test.labels[:2000]).float().mean().item()
        imitation.append({"student": arch, "optimizer": optimiser, "lr": lr, "final_l1": round(loss.item(), 3),
                          "test_accuracy": round(accuracy, 4)})
        print(json.dumps(imitation[-1]), flush=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    Path(args.out).write_text(json.dumps({
        "command": " ".join(["python", *sys.argv]), "seed": 0, "git": commit, "cpu": cpu_name(), "threads": 2,
        "torch": torch.__version__, "wall_s": round(time.time() - start, 1),
        "fresh_generator_top_class": shares, "real_image_l1_imitation_150_steps": imitation}, indent=2) + "\n")


if __name__ == "__main__":
    main()
