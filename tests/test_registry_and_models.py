"""Registries build models by name; model sizes match the paper's."""
from __future__ import annotations

import warnings

import pytest
import torch

from dfad.data import DATASETS
from dfad.errors import DfadError
from dfad.methods import METHODS
from dfad.models import MODELS, build_model, count_flops, count_parameters
from dfad.registry import Registry


def test_registry_suggests_the_nearest_name():
    with pytest.raises(DfadError, match="unknown model 'lenet5half' \\(did you mean 'lenet5_half'\\?\\)"):
        MODELS.get("lenet5half")


def test_registry_rejects_duplicates_and_bad_arguments():
    reg = Registry("thing")
    reg.register("a")(lambda: 1)
    with pytest.raises(ValueError):
        reg.register("a")(lambda: 2)
    with pytest.raises(DfadError, match="cannot build model 'lenet5' with arguments"):
        MODELS.build("lenet5", widht=3)


def test_registries_hold_the_shipped_names():
    assert {"lenet5", "lenet5_half", "convnet", "generator_a"} <= set(MODELS.names())
    assert {"digits", "mnist", "fashion_mnist"} <= set(DATASETS.names())
    assert {"dfad", "supervised"} <= set(METHODS.names())


def test_lenet_sizes_match_the_paper():
    # Paper: ~433K / ~139K multiply-accumulates per 32x32 image (it also counts pooling and biases);
    # convolutions and linear layers alone measure 416,520 and 133,740 MACs.
    teacher, student = build_model("lenet5"), build_model("lenet5_half")
    assert count_flops(teacher, (1, 32, 32)) == 2 * 416_520
    assert count_flops(student, (1, 32, 32)) == 2 * 133_740
    assert count_parameters(teacher) == 61_706 and count_parameters(student) == 15_738
    assert teacher(torch.zeros(3, 1, 32, 32)).shape == (3, 10)


def test_lenet_rejects_other_sizes_clearly():
    with pytest.raises(ValueError, match="32x32"):
        build_model("lenet5")(torch.zeros(1, 1, 28, 28))


@pytest.mark.parametrize("size, channels", [(8, 1), (32, 1), (32, 3)])
def test_generator_a_shapes_and_normalised_output(size, channels):
    torch.manual_seed(0)
    g = build_model("generator_a", nz=20, ngf=8, channels=channels, image_size=size)
    x = g(torch.randn(64, 20))
    assert x.shape == (64, channels, size, size)
    # The final affine-free BatchNorm standardises every channel over the batch.
    assert x.mean(dim=(0, 2, 3)).abs().max() < 1e-4
    assert (x.std(dim=(0, 2, 3)) - 1).abs().max() < 1e-2
    assert g.dfad_spec == {"arch": "generator_a", "args": {"nz": 20, "ngf": 8, "channels": channels, "image_size": size}}


def test_generator_a_pixel_output_lies_in_the_normalised_pixel_range():
    """output="pixels": Tanh read as pixels in [0, 1], then normalised with the teacher's mean/std;
    no batch standardisation (a batch of all-dark images stays dark)."""
    torch.manual_seed(0)
    mean, std = (0.4914, 0.4822, 0.4465), (0.247, 0.2435, 0.2616)
    g = build_model("generator_a", nz=20, ngf=8, channels=3, image_size=8, output="pixels", pixel_mean=mean,
                    pixel_std=std)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) and not m.affine for m in g.modules())
    pixels = g(torch.randn(64, 20)) * torch.tensor(std).view(1, 3, 1, 1) + torch.tensor(mean).view(1, 3, 1, 1)
    assert pixels.min() >= 0 and pixels.max() <= 1 and pixels.std() > 0.01
    with pytest.raises(ValueError, match="standardised, pixels"):
        build_model("generator_a", output="raw")


def test_generator_pixel_output_takes_the_runs_input_statistics():
    from dfad.config import load_config
    from dfad.data import DatasetInfo
    from dfad.runs import build_distillation
    from dfad.tasks import Classification

    cfg = load_config("own_model", ["distill.generator.args={ngf: 4, output: pixels}", "data.mean=[0.1307]",
                                    "data.std=[0.3081]"])
    info = DatasetInfo("none", 10, 1, 8, (0.1307,), (0.3081,))
    teacher = build_model("convnet", num_classes=10, in_channels=1, width=4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        method = build_distillation(cfg, teacher, info, Classification(), torch.device("cpu"))
    assert not [w for w in caught if "assumed" in str(w.message)]  # statistics given: nothing assumed
    assert method.generator.dfad_spec["args"]["pixel_mean"] == [0.1307]
    assert method.generator.pixel_std.flatten().tolist() == pytest.approx([0.3081])


def test_pixel_output_warns_when_the_input_statistics_are_assumed():
    from dfad.config import load_config
    from dfad.runs import build_distillation, data_free_info
    from dfad.tasks import Classification

    cfg = load_config("own_model", ["distill.generator.args.ngf=4", "data.channels=1", "data.image_size=8"])
    teacher = build_model("convnet", num_classes=10, in_channels=1, width=4).eval()
    info = data_free_info(cfg, teacher, Classification(), torch.device("cpu"), "teacher")
    with pytest.warns(UserWarning, match=r"assumed to be mean \[0.5\], std \[0.5\].*--input-mean/--input-std"):
        build_distillation(cfg, teacher, info, Classification(), torch.device("cpu"))


def test_generator_a_channels_last_is_the_same_function():
    torch.manual_seed(0)
    g = build_model("generator_a", nz=20, ngf=16, channels=1, image_size=32)
    z = torch.randn(16, 20)
    plain = g(z)
    fast = g.to(memory_format=torch.channels_last)(z)
    torch.testing.assert_close(fast, plain, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("formulation", ["subpixel", "taps"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_generator_fast_formulations_are_the_same_function_and_gradient(formulation, channels_last):
    """The upsample+conv layers run as sub-pixel 2x2 convolutions or per-tap 1x1 products: same
    outputs, same gradients as upsampling then convolving.

    In float64, so that the comparison sees the formulation, not float32 rounding (conv biases that
    BatchNorm cancels have gradients that are pure rounding noise).
    """
    from dfad.models.generators import set_upconv_formulation

    torch.manual_seed(0)
    g = build_model("generator_a", nz=20, ngf=16, channels=3, image_size=32).double()
    if channels_last:
        g = g.to(memory_format=torch.channels_last)
    z = torch.randn(8, 20, dtype=torch.double)
    upstream = torch.randn(8, 3, 32, 32, dtype=torch.double)
    results = {}
    for form in ("plain", formulation):
        out = set_upconv_formulation(g, form)(z)
        grads = torch.autograd.grad((out * upstream).sum(), list(g.parameters()))
        results[form] = (out, grads)
    torch.testing.assert_close(results[formulation][0], results["plain"][0])
    for fast, plain in zip(results[formulation][1], results["plain"][1]):
        torch.testing.assert_close(fast, plain, rtol=1e-7, atol=1e-9)
    with torch.no_grad():
        torch.testing.assert_close(set_upconv_formulation(g, formulation)(z), results["plain"][0])


def test_unknown_upconv_formulation_is_refused():
    from dfad.models.generators import set_upconv_formulation

    with pytest.raises(ValueError, match="unknown formulation"):
        set_upconv_formulation(build_model("generator_a", nz=4, ngf=4), "winograd")


@pytest.mark.parametrize("formulation", ["subpixel", "taps"])
def test_nearest_up_conv_matches_upsample_then_conv_in_value_and_gradient(formulation):
    from dfad.models.generators import NearestUpConv2d

    torch.manual_seed(0)
    layer = NearestUpConv2d(5, 7).double()
    layer.formulation = formulation
    x = torch.randn(3, 5, 6, 4, dtype=torch.double, requires_grad=True)
    params = (x, layer.weight, layer.bias)
    out = layer(x)
    expected = torch.nn.functional.conv2d(torch.nn.functional.interpolate(x, scale_factor=2), layer.weight,
                                          layer.bias, padding=1)
    torch.testing.assert_close(out, expected)
    upstream = torch.randn_like(out)
    for fast, plain in zip(torch.autograd.grad(out, params, upstream), torch.autograd.grad(expected, params, upstream)):
        torch.testing.assert_close(fast, plain)
