"""Copy a dfad teacher checkpoint with its floating-point weights stored in fp16 (half the bytes).

Used for the committed CamVid teacher (`teacher-third/seed0/teacher.pt`, 64 -> 32 MB): dfad loads
it like any teacher (the weights are cast back to fp32 on loading). Check the copy's test metric
with `dfad evaluate` before using it.

    python results/reproduce/table_camvid_cpu_runs/teacher_to_fp16.py TEACHER.pt COPY.pt
"""
import sys

import torch


def to_fp16(state_dict: dict) -> dict:
    return {k: v.half() if torch.is_floating_point(v) else v for k, v in state_dict.items()}


def main(source: str, destination: str) -> None:
    checkpoint = torch.load(source, map_location="cpu", weights_only=True)
    for entry in checkpoint["models"].values():
        entry["state_dict"] = to_fp16(entry["state_dict"])
    torch.save(checkpoint, destination)


if __name__ == "__main__":
    main(*sys.argv[1:3])
