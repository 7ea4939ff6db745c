"""Configs: YAML + overrides into validated dataclasses, with errors that name the fix."""
from __future__ import annotations

import re

import pytest

from dfad.config import Config, load_config, parse_override, resolve_config_path
from dfad.errors import DfadError
from dfad.reproduce import load_table


def test_shipped_mnist_config_is_the_paper_recipe():
    cfg = load_config("mnist")
    assert cfg.data.name == "mnist" and cfg.data.image_size == 32
    assert cfg.data.mean == [0.1307] and cfg.data.std == [0.3081]
    assert cfg.teacher.model.arch == "lenet5" and cfg.distill.student.arch == "lenet5_half"
    assert cfg.distill.generator.arch == "generator_a" and cfg.distill.nz == 100
    d = cfg.distill
    assert (d.batch_size, d.imitation_steps, d.val_every, d.iterations) == (512, 5, 50, 2000)
    s, g = d.student_optimizer, d.generator_optimizer
    assert (s.name, s.lr, s.momentum, s.weight_decay) == ("sgd", 0.01, 0.9, 1e-4)
    assert (g.name, g.lr) == ("adam", 1e-3)


def test_defaults_without_a_config_file_are_dfads():
    """What a run without --config uses (the shipped YAMLs state k themselves): the paper's k = 5,
    the authors' train-mode student BatchNorm in the generation step."""
    d = load_config(None).distill
    assert (d.method, d.imitation_steps, d.generation_student_bn) == ("dfad", 5, "train")


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_generation_student_bn_reaches_the_method(mode):
    import torch

    from dfad.data import DatasetInfo
    from dfad.models import build_model
    from dfad.runs import build_distillation
    from dfad.tasks import Classification

    cfg = load_config("digits", [f"distill.generation_student_bn={mode}", "distill.generator.args.ngf=4"])
    info = DatasetInfo("digits", 10, 1, 8, (0.5,), (0.5,))
    teacher = build_model("convnet", num_classes=10, in_channels=1, width=4)
    method = build_distillation(cfg, teacher, info, Classification(), torch.device("cpu"))
    assert method.generation_student_bn == mode


@pytest.mark.parametrize("student, lr", [("convnet", 0.01), ("convnet_bn", 0.1), ("cifar_resnet8", 0.1)])
def test_auto_student_lr_follows_the_students_batchnorm(student, lr):
    """`lr: auto` (the no-data preset's): the authors' 0.1 for a BatchNorm student, their 0.01 for a
    student without (a plain CNN at 0.1 died in DFAD's first iterations, results/foreign)."""
    import torch

    from dfad.data import DatasetInfo
    from dfad.models import build_model
    from dfad.runs import build_distillation
    from dfad.tasks import Classification

    cfg = load_config("own_model", [f"distill.student={{arch: {student}, args: {{}}}}", "distill.generator.args.ngf=4"])
    assert cfg.distill.student_optimizer.lr == "auto"
    info = DatasetInfo("none", 10, 1, 8, (0.5,), (0.5,))
    teacher = build_model("convnet", num_classes=10, in_channels=1, width=4)
    method = build_distillation(cfg, teacher, info, Classification(), torch.device("cpu"))
    assert method.optimizers["student"].param_groups[0]["lr"] == lr


@pytest.mark.parametrize("override, message", [
    ("distill.student_optimizer.lr=fast", "distill.student_optimizer.lr must be a number or 'auto', got 'fast'"),
    ("distill.generator_optimizer.lr=auto", "distill.generator_optimizer.lr must be a number, got 'auto'"),
    ("teacher.optimizer.lr=auto", "teacher.optimizer.lr must be a number, got 'auto'"),
])
def test_auto_lr_is_only_for_the_student(override, message):
    with pytest.raises(DfadError, match=re.escape(message)):
        load_config("own_model", [override])


def test_yaml_only_states_what_differs(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("distill:\n  batch_size: 64\n")
    cfg = load_config(str(path))
    assert cfg.distill.batch_size == 64
    assert cfg.distill.imitation_steps == Config().distill.imitation_steps
    assert cfg.distill.student_optimizer == Config().distill.student_optimizer


def test_overrides_are_typed_and_nested():
    cfg = load_config("digits", ["distill.iterations=7", "distill.student_optimizer.lr=0.5",
                                 "distill.student.args.width=4", "data.mean=[0.5]", "data.std=[0.25]",
                                 "distill.student_schedule.name=multistep", "distill.student_schedule.milestones=[3,5]"])
    assert cfg.distill.iterations == 7
    assert cfg.distill.student_optimizer.lr == 0.5
    assert cfg.distill.student.args == {"width": 4} and cfg.distill.student.arch == "convnet"
    assert cfg.data.mean == [0.5]
    assert cfg.distill.student_schedule.milestones == [3, 5]


def test_a_new_model_replaces_the_default_arguments():
    cfg = load_config("digits", ["teacher.model={arch: lenet5}"])
    assert cfg.teacher.model.arch == "lenet5" and cfg.teacher.model.args == {}


@pytest.mark.parametrize("override, message", [
    ("distill.batch_sise=3", "unknown key 'distill.batch_sise' (did you mean 'batch_size'?)"),
    ("distill.batch_size=-1", "distill.batch_size must be positive, got -1"),
    ("distill.imitation_steps=0", "distill.imitation_steps must be positive, got 0"),
    ("distill.generation_student_bn=batch", "distill.generation_student_bn must be 'train' or 'eval', got 'batch'"),
    ("distill.batch_size=1.5", "distill.batch_size must be an integer"),
    ("distill.student.arch=lenet6", "unknown model 'lenet6' (did you mean 'lenet5'?)"),
    ("data.name=mnits", "unknown dataset 'mnits' (did you mean 'mnist'?)"),
    ("distill.method=dfda", "unknown method 'dfda' (did you mean 'dfad'?)"),
    ("distill.student_optimizer.name=adm", "must be 'sgd' or 'adam', got 'adm' (did you mean 'adam'?)"),
    ("distill.student_schedule.name=cosin", "(did you mean 'cosine'?)"),
    ("data.download=maybe", "data.download must be true or false"),
    ("data.mean=[0.5]", "give both data.mean and data.std"),
    ("device=tpu", "device must be 'cpu' or 'cuda[:N]'"),
    ("distill", "is not of the form key=value"),
])
def test_bad_values_are_rejected_with_the_fix(override, message):
    with pytest.raises(DfadError) as info:
        load_config("digits", [override])
    assert message in str(info.value)


def test_unknown_config_name_suggests_shipped_ones():
    with pytest.raises(DfadError, match="did you mean 'mnist'"):
        resolve_config_path("mnsit")


def test_override_values_are_yaml():
    assert parse_override("a.b=0.5") == ("a.b", 0.5)
    assert load_config("digits", ["distill.student_optimizer.lr=1e-3"]).distill.student_optimizer.lr == 1e-3
    assert parse_override("a=null") == ("a", None)
    assert parse_override("a=some/path") == ("a", "some/path")


def test_bad_yaml_file_is_reported(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("distill: [unclosed\n")
    with pytest.raises(DfadError, match="is not valid YAML"):
        load_config(str(path))


def test_config_base_merges_nested_keys_and_replaces_model_specs(tmp_path):
    child = tmp_path / "child.yaml"
    child.write_text("base: mnist\ndistill:\n  iterations: 7\n  student: {arch: convnet, args: {width: 4}}\n")
    cfg = load_config(str(child))
    assert cfg.distill.iterations == 7
    assert cfg.distill.batch_size == 512  # kept from mnist
    assert cfg.distill.student.arch == "convnet" and cfg.distill.student.args == {"width": 4}
    assert cfg.data.name == "mnist"


def test_config_base_loop_is_refused(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(DfadError, match="loops back"):
        load_config(str(tmp_path / "a.yaml"))


def test_shipped_fast_mnist_preset_differs_from_the_paper_recipe_only_where_documented():
    paper, fast = load_config("mnist"), load_config("mnist_fast")
    assert fast.distill.generator.args == {"ngf": 32} and fast.distill.compile
    assert fast.distill.student_schedule.name == "cosine"
    assert (fast.distill.batch_size, fast.distill.imitation_steps, fast.distill.student_optimizer,
            fast.distill.generator_optimizer) == (
        paper.distill.batch_size, paper.distill.imitation_steps, paper.distill.student_optimizer,
        paper.distill.generator_optimizer)
    # The teacher: dfad's earlier recipe (20 epochs, cosine), otherwise the paper's (documented in the file).
    assert (fast.teacher.iterations, fast.teacher.schedule.name) == (4700, "cosine")
    fast.teacher.iterations, fast.teacher.schedule, fast.teacher.val_every = (
        paper.teacher.iterations, paper.teacher.schedule, paper.teacher.val_every)
    assert fast.teacher == paper.teacher


def test_shipped_plus_preset_is_the_side_by_side_tables_combination_row():
    """`cifar10_cpu_plus` is what table_dfad_plus_cifar10_cpu measured as `combination`: the preset
    a user runs and the row the README quotes cannot drift apart."""
    table = load_table("table_dfad_plus_cifar10_cpu")
    row = next(r for r in table.rows if r.name == "combination")
    preset = load_config("cifar10_cpu_plus")
    assert preset == load_config(table.config, row.overrides)
    assert preset.distill.method_args != load_config(table.config).distill.method_args  # options really on


def test_a_misspelt_method_option_is_a_config_error_naming_the_options():
    """Config validation (before a run folder exists) rejects `distill.method_args` names the method
    does not take; each method's own, its parents' (RANDOM passes **kwargs to DFAD) pass. A method
    without options is not checked (tests/test_toy_method.py: it runs under own_model's options)."""
    with pytest.raises(DfadError, match=r"^config: distill\.method_args\.augmnt is not an option of method "
                                        r"'dfad' \(did you mean 'augment'\?\); its options: .*generator_ema"):
        load_config("mnist_fast", ["distill.method_args={augmnt: true}"])
    with pytest.raises(DfadError, match=r"distill\.method_args\.student is not an option of method 'dfad'"):
        load_config("mnist_fast", ["distill.method_args={student: lenet5}"])  # the run fills that in
    load_config("mnist_fast", ["distill.method_args={augment: true, generator_ema: 0.9}"])
    load_config("mnist_fast", ["distill.method=random", "distill.method_args={augment: true}"])
    with pytest.raises(DfadError, match=r"distill\.method_args\.augmnt is not an option of method 'random'"):
        load_config("mnist_fast", ["distill.method=random", "distill.method_args={augmnt: true}"])
    load_config("mnist_fast", ["distill.method=kd", "distill.method_args={data: mnist}"])
