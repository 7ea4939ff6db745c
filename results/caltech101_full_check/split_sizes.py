"""The Caltech-101 split the `caltech101` configs read (fixed, stratified 80/20 per class).

    python results/caltech101_full_check/split_sizes.py DATA_ROOT > results/caltech101_full_check/split_sizes.json
"""
import json
import sys

from dfad.data import DATASETS

root = sys.argv[1]
out = {}
for train in (True, False):
    data = DATASETS.build("caltech101", root=root, train=train, image_size=16)  # size does not change the split
    counts = data.labels.bincount(minlength=data.info.num_classes)
    out["train" if train else "test"] = {"images": len(data.labels), "classes": data.info.num_classes,
                                         "smallest_class": int(counts.min()), "largest_class": int(counts.max())}
print(json.dumps(out, indent=1))
