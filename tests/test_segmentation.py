"""Segmentation on the same engine: the task's losses and mIoU, the DeepLabV3 models, GeneratorB,
the CamVid / NYUv2 readers, and the camvid / nyuv2 configs' real code path at tiny sizes."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from dfad.data import DATASETS
from dfad.errors import DfadError
from dfad.models import build_model
from dfad.tasks import TASKS

from conftest import smoke_run_config


def test_miou_ignores_void_and_absent_classes():
    metric = TASKS.build("segmentation").new_metric(3)
    labels = torch.tensor([[[0, 0, 1, 255]]])
    logits = torch.zeros(1, 3, 1, 4)
    logits[0, 0, 0, :2] = 1  # pixels 0,1 -> class 0 (right)
    logits[0, 2, 0, 2:] = 1  # pixel 2 -> class 2 (wrong, true 1); pixel 3 is void
    metric.update(logits, labels)
    per_class = metric.per_class()
    assert per_class[0] == 1.0 and per_class[1] == 0.0 and per_class[2] == 0.0
    assert metric.compute() == pytest.approx(1 / 3)


def test_generator_loss_is_minus_log_of_l1_plus_one():
    task = TASKS.build("segmentation")
    s, t = torch.zeros(2, 3, 4, 4), torch.full((2, 3, 4, 4), 2.0)
    assert task.discrepancy(s, t).item() == pytest.approx(2.0)
    assert task.generator_loss(s, t).item() == pytest.approx(-math.log(3.0))


@pytest.mark.parametrize("arch", ["deeplabv3_resnet50", "deeplabv3_resnet18", "deeplabv3_mobilenetv2"])
def test_deeplab_models_give_per_pixel_logits_at_input_size(arch):
    model = build_model(arch, num_classes=5).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 48, 64)).shape == (1, 5, 48, 64)


def test_deeplab_networks_have_the_authors_strides_and_atrous_rates():
    """The authors' student: MobileNetV2 at output stride 8 (blocks 7-10 dilation 1, 11-16 dilation
    2, 17 dilation 4, as their backbone's rule gives); both heads use ASPP rates 12, 24, 32."""
    student = build_model("deeplabv3_mobilenetv2", num_classes=11).eval()
    depthwise = {i: (c.stride[0], c.dilation[0]) for i, block in enumerate(student.backbone.features)
                 for c in block.modules() if isinstance(c, nn.Conv2d) and c.kernel_size == (3, 3)}
    assert [depthwise[i] for i in (2, 4, 7, 8, 11, 14, 16, 17)] == [(2, 1), (2, 1), (1, 1), (1, 1), (1, 2), (1, 2),
                                                                     (1, 2), (1, 4)]
    with torch.no_grad():
        assert student.backbone(torch.randn(1, 3, 64, 64))["out"].shape[-2:] == (8, 8)  # stride 8
    cheaper = build_model("deeplabv3_mobilenetv2", num_classes=11, output_stride=16).eval()
    with torch.no_grad():
        assert cheaper.backbone(torch.randn(1, 3, 64, 64))["out"].shape[-2:] == (4, 4)
    teacher = build_model("deeplabv3_resnet50", num_classes=11)
    for model in (student, teacher):
        aspp = model.classifier[0]
        assert [branch[0].dilation[0] for branch in aspp.convs[1:4]] == [12, 24, 32]


@pytest.mark.parametrize("output_stride", [8, 16])
def test_deeplab_resnet18_is_dilated_to_its_output_stride(output_stride):
    """BasicBlocks take no dilation in torchvision; ours dilate layer3/layer4 instead of striding."""
    model = build_model("deeplabv3_resnet18", num_classes=11, output_stride=output_stride).eval()
    with torch.no_grad():
        assert model.backbone(torch.randn(1, 3, 64, 64))["out"].shape[-2:] == (64 // output_stride,) * 2
    last = model.backbone.layer4[-1].conv2
    assert (last.stride, last.dilation) == ((1, 1), (32 // output_stride,) * 2)


def test_generator_b_is_the_authors_dcgan_generator():
    """The authors' GeneratorB (network/gan.py): linear -> BN -> 4 x [4x4 stride-2 transposed conv
    without bias -> BN -> LeakyReLU(0.2)] -> 3x3 conv -> Tanh, no final BatchNorm, DCGAN init."""
    g = build_model("generator_b", nz=256, ngf=64, channels=3, image_size=128)
    # Linear 256 -> 512*8*8 (+bias) 8,421,376; BN(512) 1,024; transposed convs 512->256->128->64->64
    # (4x4, no bias) 2,818,048; their BNs 1,024; 3x3 conv 64 -> 3 (+bias) 1,731.
    assert sum(p.numel() for p in g.parameters()) == 11_243_203
    kinds = [type(m) for m in g.modules() if not isinstance(m, (nn.Sequential, type(g)))]
    block = [nn.ConvTranspose2d, nn.BatchNorm2d, nn.LeakyReLU]
    assert kinds == [nn.Linear, nn.BatchNorm2d, *block * 4, nn.Conv2d, nn.Tanh]
    for m in g.modules():
        if isinstance(m, nn.ConvTranspose2d):
            assert (m.kernel_size, m.stride, m.padding, m.bias) == ((4, 4), (2, 2), (1, 1), None)
        if isinstance(m, nn.LeakyReLU):
            assert m.negative_slope == 0.2
    widths = [m.out_channels for m in g.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert widths == [256, 128, 64, 64]
    # DCGAN initialisation: weights N(0, 0.02), biases 0; BatchNorm weights N(1, 0.02), biases 0.
    assert g.project.weight.std().item() == pytest.approx(0.02, rel=0.02)
    assert g.project.weight.mean().abs().item() < 1e-3 and not g.project.bias.any()
    assert g.stages[0].weight.std().item() == pytest.approx(0.02, rel=0.02)
    bn = g.project_norm
    assert bn.weight.mean().item() == pytest.approx(1.0, abs=0.005) and 0.01 < bn.weight.std().item() < 0.03
    assert not bn.bias.any()
    x = g(torch.randn(8, 256))
    assert x.shape == (8, 3, 128, 128)
    assert x.abs().max() <= 1.0  # Tanh: the [-1, 1] range of images normalised with mean 0.5 / std 0.5
    assert x.mean((0, 2, 3)).abs().max() > 1e-3  # not standardised by a final BatchNorm


def test_generator_b_nearest_keeps_dfads_earlier_generator():
    g = build_model("generator_b_nearest", nz=16, ngf=4, channels=3, image_size=64)
    x = g(torch.randn(8, 16))
    assert x.shape == (8, 3, 64, 64)
    assert x.mean((0, 2, 3)).abs().max() < 1e-4  # the final affine-free BatchNorm standardises


def _write_segmentation_fixture(root, name: str):
    from PIL import Image

    rng = np.random.default_rng(0)
    if name == "camvid":
        folder = root / "CamVid"
        for split, count in (("train", 3), ("val", 1), ("test", 2)):
            (folder / split).mkdir(parents=True)
            (folder / f"{split}annot").mkdir()
            lines = []
            for i in range(count):
                Image.fromarray(rng.integers(0, 256, (36, 48, 3), dtype=np.uint8)).save(folder / split / f"{i}.jpg")
                Image.fromarray(rng.integers(0, 12, (36, 48), dtype=np.uint8)).save(folder / f"{split}annot" / f"{i}.png")
                lines.append(f"{split}/{i}.jpg {split}annot/{i}.png")
            (folder / f"{split}.txt").write_text("\n".join(lines) + "\n")
    else:
        for split, count in (("train", 4), ("test", 2)):
            folder = root / "NYUv2" / split
            (folder / "image").mkdir(parents=True)
            (folder / "label13").mkdir()
            for i in range(count):
                Image.fromarray(rng.integers(0, 256, (36, 48, 3), dtype=np.uint8)).save(folder / "image" / f"{i}.png")
                Image.fromarray(rng.integers(0, 14, (36, 48), dtype=np.uint8)).save(folder / "label13" / f"{i}.png")


@pytest.mark.parametrize("name, classes", [("camvid", 11), ("nyuv2", 13)])
def test_readers_map_void_to_the_ignore_index(tmp_path, name, classes):
    _write_segmentation_fixture(tmp_path, name)
    train = DATASETS.build(name, root=tmp_path, train=True)
    assert train.info.num_classes == classes and train.images.shape[1:] == (3, 36, 48)
    values = set(train.labels.unique().tolist())
    assert values <= set(range(classes)) | {255} and 255 in values
    half = DATASETS.build(name, root=tmp_path, train=False, scale=0.5)
    assert half.images.shape[-2:] == (18, 24) and half.labels.shape[-2:] == (18, 24)


def test_shorter_side_resizes_whole_frames_like_torchvisions_resize(tmp_path):
    _write_segmentation_fixture(tmp_path, "camvid")  # 36x48 frames
    frames = DATASETS.build("camvid", root=tmp_path, train=False, shorter_side=24)
    assert frames.images.shape[-2:] == (24, 32) and frames.labels.shape[-2:] == (24, 32)
    assert set(frames.labels.unique().tolist()) <= set(range(11)) | {255}  # nearest: no blended labels


def test_shorter_side_is_refused_for_datasets_without_frames():
    from dfad.config import load_config
    from dfad.runs import load_split

    cfg = load_config("digits", ["data.shorter_side=16"])
    with pytest.raises(DfadError, match="does not resize by data.shorter_side"):
        load_split(cfg, train=False)


def test_focal_loss_is_the_authors():
    """(1 - p_t)^2 * CE, averaged over every pixel; an ignored pixel counts as zero."""
    from dfad.tasks import SUPERVISED_LOSSES

    logits = torch.tensor([[[[2.0, 0.0]], [[0.0, 0.0]], [[-1.0, 0.0]]]])  # [1, 3 classes, 1, 2 pixels]
    labels = torch.tensor([[[0, 255]]])
    p_true = torch.softmax(torch.tensor([2.0, 0.0, -1.0]), 0)[0]
    expected = (1 - p_true) ** 2 * -torch.log(p_true) / 2  # two pixels, one ignored
    loss = SUPERVISED_LOSSES.get("focal")(logits, labels, ignore_index=255)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    segmentation = TASKS.build("segmentation")
    assert segmentation.supervised_loss(logits, labels, "focal").item() == pytest.approx(expected.item(), rel=1e-6)
    assert segmentation.supervised_loss(logits, labels).item() == pytest.approx(-torch.log(p_true).item(), rel=1e-6)


def test_missing_segmentation_data_names_the_fix(tmp_path):
    with pytest.raises(DfadError, match="CamVid not found.*--data-root"):
        DATASETS.build("camvid", root=tmp_path)
    with pytest.raises(DfadError, match="NYUv2 not found.*--data-root"):
        DATASETS.build("nyuv2", root=tmp_path)


@pytest.mark.slow
def test_camvid_reads_the_offline_copy(prepared_data_root):
    test = DATASETS.build("camvid", root=prepared_data_root, train=False, scale=0.25)
    assert len(test) == 233 and test.images.shape[1:] == (3, 90, 120)


TINY_SEGMENTATION = ["data.image_size=32", "data.shorter_side=36", "data.eval_batch_size=2", "teacher.iterations=2", "teacher.batch_size=2",
                     "teacher.val_every=2", "distill.iterations=2", "distill.batch_size=2", "distill.val_every=2",
                     "distill.sample_grid_size=2", "distill.generator.args.ngf=4", "distill.nz=8"]


@pytest.mark.slow
@pytest.mark.parametrize("config", ["camvid", "camvid_cpu", "nyuv2"])
def test_segmentation_configs_run_their_real_code_path(tmp_path, config):
    """Teacher training (crops + flips), then DFAD and KD at tiny sizes: finite losses, mIoU in
    range, per-class IoU of teacher and student in each summary."""
    _write_segmentation_fixture(tmp_path, "camvid" if config.startswith("camvid") else config)
    summaries = smoke_run_config(config, TINY_SEGMENTATION, tmp_path, tmp_path / "runs", methods=("dfad", "kd"))
    assert summaries["teacher"]["metric"] == "miou"
    assert all(summaries[m]["iterations"] == 2 for m in ("dfad", "kd"))
    classes = 11 if config.startswith("camvid") else 13
    for m in ("dfad", "kd"):
        per_class = summaries[m]["per_class_miou"]
        assert set(per_class) == {"teacher", "student"} and all(len(v) == classes for v in per_class.values())
        assert all(v is None or 0 <= v <= 1 for values in per_class.values() for v in values)


def test_segmentation_kd_learns_from_random_crops_of_whole_frames(tmp_path):
    """KD-ORI on segmentation: the 36 x 48 frames keep their size and each batch is cropped to
    the teacher's 32 px input, as in teacher training (not squeezed)."""
    from dfad.config import load_config
    from dfad.data import DATASETS
    from dfad.runs import build_distillation
    from dfad.tasks import TASKS

    _write_segmentation_fixture(tmp_path, "camvid")
    cfg = load_config("camvid", [*TINY_SEGMENTATION, "distill.method=kd"])
    cfg.data.root = str(tmp_path)
    info = DATASETS.build("camvid", root=tmp_path, train=False, image_size=32).info
    method = build_distillation(cfg, torch.nn.Conv2d(3, 11, 1), info, TASKS.build("segmentation"), "cpu")
    assert method.images.images.shape[-2:] == (36, 48)
    images, _ = next(method.images)
    assert images.shape == (2, 3, 32, 32)
    frames = method.images.images
    assert any(torch.equal(images[0], frames[i, :, t:t + 32, l:l + 32])
               for i in range(len(frames)) for t in range(5) for l in range(17))
