"""Mutation check: do the tests fail when the code they guard is broken?

Each mutation below replaces one exact snippet of the library with a broken variant. The script
applies every mutation ALONE to a fresh temporary copy of the repository, runs the tests chosen to
catch it there (PYTHONPATH and the working directory point at the copy, so the copy's `dfad` is
the one imported, by pytest and by every subprocess a test starts), and reports:

    caught     every selected test failed
    PARTLY     some selected tests failed, others passed or were skipped
    SURVIVED   no selected test failed
    error      the snippet is not in the current source, the mutated file does not compile,
               pytest could not run the selection, or it ran out of time

Before the mutations, the union of all selections runs once on an unmutated copy and must pass:
a test that already fails would "catch" anything.

A snippet that is no longer in the source (code refactored) is an error, never a silent pass:
update the entry (and check its tests still catch it) rather than deleting it.

    python tests/mutations.py                  # all mutations (~5 minutes on 2 idle cores)
    python tests/mutations.py --only NAME ...  # some of them
    python tests/mutations.py --list           # names, files and selections
    python tests/mutations.py --update-readme  # also record the results in tests/README.md

Not part of the pytest run (the file name does not match test_*.py). Exit status 0 when every
mutation run was caught.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "tests" / "README.md"
# Top-level entries not needed by the tests (or large); everything else is copied.
NOT_COPIED = {".git", ".pytest_cache", ".benchmarks", "results", "runs", "data", "build", "dist", ".venv"}
IGNORED = shutil.ignore_patterns("__pycache__", "*.egg-info", ".pytest_cache", "*.pyc")


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str  # relative to the repository root
    original: str  # must occur exactly once in the file
    mutated: str
    tests: tuple[str, ...]  # pytest node ids (a name without [params] selects every parametrization)
    what: str  # the bug it stands for, for the report


UR = "tests/test_update_rule.py::"
MODELS = "tests/test_registry_and_models.py::"
SUBPIXEL = (MODELS + "test_nearest_up_conv_matches_upsample_then_conv_in_value_and_gradient[subpixel]",
            MODELS + "test_generator_fast_formulations_are_the_same_function_and_gradient[False-subpixel]",
            MODELS + "test_generator_fast_formulations_are_the_same_function_and_gradient[True-subpixel]")
TAPS = (MODELS + "test_nearest_up_conv_matches_upsample_then_conv_in_value_and_gradient[taps]",
        MODELS + "test_generator_fast_formulations_are_the_same_function_and_gradient[False-taps]",
        MODELS + "test_generator_fast_formulations_are_the_same_function_and_gradient[True-taps]")
DFAD_STEP = """        self.teacher.eval()
        self.student.train()
        self.generator.train()
        student_losses = [self.imitation_step() for _ in range(self.imitation_steps)]
        generator_loss = self.generation_step()
        self.update_averages()
        return {"student_loss": fmean(student_losses), "generator_loss": generator_loss, **self.added_generator_terms}"""

MUTATIONS = [
    # --- found surviving by the hand check; caught by tests added for them ---
    Mutation(
        "default-imitation-steps-1", "dfad/config.py",
        "    imitation_steps: int = 5  # student updates per generator update",
        "    imitation_steps: int = 1  # student updates per generator update",
        ("tests/test_config.py::test_defaults_without_a_config_file_are_dfads",
         "tests/test_your_model.py::test_data_free_cli_run_without_a_config_takes_five_imitation_steps_per_generator_step"),
        "k = 1 by default (every shipped YAML states k = 5; a run without --config does not)"),
    Mutation(
        "teacher-train-mode-during-steps", "dfad/methods/dfad.py", DFAD_STEP,
        DFAD_STEP.replace("self.teacher.eval()", "self.teacher.train()").replace(
            "        return {", "        self.teacher.eval()\n        return {"),
        (UR + "test_teacher_with_batchnorm_is_unchanged_by_training",
         "tests/test_your_model.py::test_python_api_distills_a_torchvision_teacher_into_a_registry_student"),
        "teacher in train mode during the steps, back in eval mode after: its BatchNorm statistics drift"),
    Mutation(
        "generation-step-minus-l1", "dfad/methods/adversarial.py",
        "    return task.generator_loss(student_logits, teacher_logits)",
        "    return -task.discrepancy(student_logits, teacher_logits)",
        (UR + "test_segmentation_generation_step_minimises_minus_log_of_l1_plus_one",),
        "the generation step ignores the task's generator loss (segmentation trains with -L1)"),
    # --- the generation step's student BatchNorm mode (distill.generation_student_bn) ---
    Mutation(
        "generation-student-bn-eval-ignored", "dfad/methods/dfad.py",
        '        self.student.train(self.generation_student_bn == "train")',
        "        self.student.train()",
        (UR + "test_generation_step_with_eval_mode_bn_uses_the_students_running_statistics_and_keeps_them",),
        'generation_student_bn="eval" behaves as "train"'),
    Mutation(
        "generation-student-bn-train-ignored", "dfad/methods/dfad.py",
        '        self.student.train(self.generation_student_bn == "train")',
        "        self.student.train(False)",
        (UR + "test_generation_step_with_train_mode_bn_moves_the_students_statistics_not_its_weights",),
        'generation_student_bn="train" behaves as "eval"'),
    Mutation(
        "generation-student-left-in-eval-mode", "dfad/methods/dfad.py",
        "        finally:\n            self.student.train()\n",
        "        finally:\n            pass\n",
        (UR + "test_generation_step_with_eval_mode_bn_uses_the_students_running_statistics_and_keeps_them",),
        "the student stays in eval mode after an eval-mode generation step"),
    Mutation(
        "generation-student-bn-config-dropped", "dfad/methods/dfad.py",
        "generation_student_bn=dc.generation_student_bn, **parts.common(), **dc.method_args)",
        "**parts.common(), **dc.method_args)",
        ("tests/test_config.py::test_generation_student_bn_reaches_the_method[eval]",),
        "distill.generation_student_bn never reaches the method"),
    # --- already caught before the hand check ---
    Mutation(
        "generator-loss-sign", "dfad/tasks.py",
        "        return -self.discrepancy(student_logits, teacher_logits)",
        "        return self.discrepancy(student_logits, teacher_logits)",
        (UR + "test_losses_are_l1_and_minus_l1", UR + "test_generation_step_raises_discrepancy_on_its_batch"),
        "the generator minimises the discrepancy instead of maximising it"),
    Mutation(
        "teacher-train-mode", "dfad/methods/dfad.py", DFAD_STEP,
        DFAD_STEP.replace("self.teacher.eval()", "self.teacher.train()"),
        (UR + "test_teacher_is_frozen_and_bit_identical_after_training",
         UR + "test_teacher_with_batchnorm_is_unchanged_by_training"),
        "teacher in train mode for good"),
    Mutation(
        "trainable-teacher", "dfad/methods/base.py",
        "        p.requires_grad_(False)\n    return model",
        "        p.requires_grad_(True)\n    return model",
        (UR + "test_teacher_is_frozen_and_bit_identical_after_training",
         UR + "test_teacher_with_batchnorm_is_unchanged_by_training"),
        "the teacher's parameters require gradients"),
    Mutation(
        "no-generation-step", "dfad/methods/dfad.py",
        "        generator_loss = self.generation_step()",
        "        generator_loss = 0.0",
        (UR + "test_each_step_draws_a_fresh_noise_batch",),
        "an iteration skips the generation step"),
    Mutation(
        "generator-loss-option-ignored", "dfad/methods/dfad.py",
        "        adversarial = self.generator_loss(student_out.float(), teacher_out.float(), task=self.task)",
        "        adversarial = self.task.generator_loss(student_out.float(), teacher_out.float())",
        ("tests/test_generator_loss.py::test_dfad_generation_step_maximises_the_chosen_loss_and_the_student_keeps_l1",),
        "generator_loss is accepted but the generator always maximises the task's L1"),
    Mutation(
        "imitation-ignores-the-compiled-teacher", "dfad/methods/dfad.py",
        "            teacher_out = self.teacher_forward(images)",
        "            teacher_out = self.teacher(images)",
        ("tests/test_fast_paths.py::test_imitation_targets_come_from_the_teacher_forward_it_is_given",),
        "distill.compile builds a compiled teacher that the imitation steps never call"),
    Mutation(
        "one-imitation-step-short", "dfad/methods/dfad.py",
        "        student_losses = [self.imitation_step() for _ in range(self.imitation_steps)]",
        "        student_losses = [self.imitation_step() for _ in range(self.imitation_steps - 1)]",
        ("tests/test_fast_paths.py::test_engine_iterations_equal_the_plain_loop[eager]",),
        "each DFAD iteration takes one student step fewer than imitation_steps"),
    Mutation(
        "kl-logit-generator-not-warned", "dfad/methods/dfad.py",
        '    if imitation_loss == "kl" and generator_loss == "task" and trains_generator:',
        '    if imitation_loss == "kl" and generator_loss == "kl" and trains_generator:',
        ("tests/test_imitation.py::test_dfad_student_minimises_kl_while_the_generator_keeps_the_l1_bound",
         "tests/test_imitation.py::test_kl_with_a_kl_generator_or_l1_with_the_paper_generator_is_not_warned_of"),
        "the warning against KL imitation with the paper's logit generator goes to the wrong pairing"),
    Mutation(
        "kl-warning-on-fixed-generator", "dfad/methods/dfad.py",
        '    if imitation_loss == "kl" and generator_loss == "task" and trains_generator:',
        '    if imitation_loss == "kl" and generator_loss == "task":',
        ("tests/test_priors.py::test_methods_that_do_not_train_dfads_generator_refuse_its_options",),
        "RANDOM (a generator never trained) is warned about the generator's loss"),
    Mutation(
        "bf16-cpu-generator-compiled", "dfad/engine/compile.py",
        '    if device.type == "cpu" and resolve_precision(precision, device) == "bf16":\n        return generator\n',
        "",
        ("tests/test_fast_paths.py::test_bf16_on_cpu_keeps_the_generator_eager_and_sub_pixel",),
        "under bf16 on CPU, distill.compile still compiles the per-tap generator (slower there than eager sub-pixel)"),
    Mutation(
        "image-layer-rule-never-applied", "dfad/methods/dfad.py",
        '        choose_eager_formulations(built["generator"], parts.device, parts.cfg.precision)\n', "",
        ("tests/test_fast_paths.py::test_image_layer_is_an_ordinary_convolution_under_bf16_on_cpus_with_amx[bf16-amx]",),
        "under bf16 on a CPU with AMX the generator keeps its per-tap image layer (0.721 against 0.625 s/it)"),
    Mutation(
        "image-layer-rule-ignores-amx", "dfad/engine/compile.py",
        ' == "bf16" and _cpu_has_amx():', ' == "bf16":',
        ("tests/test_fast_paths.py::test_image_layer_is_an_ordinary_convolution_under_bf16_on_cpus_with_amx[bf16-without-amx]",),
        "the ordinary image layer is chosen under bf16 on CPUs without AMX, where it is unmeasured"),
    Mutation(
        "adam-per-parameter-loop", "dfad/engine/optim.py",
        "betas=tuple(cfg.betas), weight_decay=cfg.weight_decay, foreach=True)",
        "betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)",
        ("tests/test_engine.py::test_optimisers_take_multi_tensor_steps_with_the_loops_exact_values[adam]",),
        "the generator's Adam steps loop over parameters again (30.9 against 16.3 ms a step)"),
    Mutation(
        "bf16-warning-every-call", "dfad/engine/precision.py",
        ' and "no-native-bf16" not in _warned:', ":",
        ("tests/test_precision.py::test_bf16_without_native_support_is_warned_once_per_process",),
        "the no-native-bf16 warning repeats each time a run resolves its precision"),
    Mutation(
        "generator-average-always-compiled", "dfad/methods/dfad.py",
        "compiled=self.generate is not generator)", "compiled=True)",
        ("tests/test_fast_paths.py::test_generator_average_is_compiled_exactly_when_the_generator_is[generator-left-eager]",),
        "the momentum generator is compiled even where the compile rule left the generator eager (bf16 on CPU)"),
    Mutation(
        "generator-average-never-compiled", "dfad/methods/dfad.py",
        "compiled=self.generate is not generator)", "compiled=False)",
        ("tests/test_fast_paths.py::test_generator_average_is_compiled_exactly_when_the_generator_is[generator-compiled]",),
        "the momentum generator stays eager beside a compiled generator (its per-tap form is slow eager)"),
    Mutation(
        "threads-recorded-before-setup", "dfad/runs.py",
        "    device, distributed = setup_distributed(cfg)\n    # At the start (the working tree may change while the run goes on), after setup: the machine\n"
        "    # facts include the thread count the run uses, not the process's default.\n    origin = provenance()\n"
        "    task = TASKS.build(cfg.task)\n    test_set",
        "    origin = provenance()\n    device, distributed = setup_distributed(cfg)\n"
        "    task = TASKS.build(cfg.task)\n    test_set",
        ("tests/test_precision.py::test_summary_records_the_threads_the_run_used",),
        "a distillation run's summary records the process's default thread count, not the run's"),
    Mutation(
        "per-row-seed-count-ignored", "dfad/reproduce.py",
        "row_seeds = seeds_given.get(row.name, seeds)", "row_seeds = seeds",
        ("tests/test_baselines.py::test_reproduce_spreads_seeds_over_calls_and_the_table_reuses_them",),
        "`--rows teacher:1` still runs --seeds seeds of the row (here: trains a second teacher)"),
    Mutation(
        "divergence-recovery-never-noted", "dfad/health.py",
        "if self.diverged_at is not None and signal >= self.diverged_at[0]:", "if False:",
        ("tests/test_health.py::test_a_diverging_student_that_recovers_gets_a_note_once",),
        "a diverging student that recovers gets no note: its user is left with the warning"),
    Mutation(
        "divergence-not-remembered-on-resume", "dfad/health.py",
        "            self._track_divergence(past[self.divergence_signal], past.get(\"iteration\", 0))\n", "",
        ("tests/test_health.py::test_a_diverging_student_that_recovers_gets_a_note_once",),
        "a run resumed after a divergence warning forgets it and never notes the recovery"),
    Mutation(
        "low-diversity-never-counted", "dfad/health.py",
        "entropy < LOW_DIVERSITY_ENTROPY else 0", "entropy < 0 else 0",
        ("tests/test_health.py::test_low_diversity_warning_rule",),
        "a generator showing the teacher a few classes (none above half) goes unwarned, as CamVid's paper recipe did"),
    Mutation(
        "low-diversity-streak-reset-on-resume", "dfad/health.py",
        "        self._count_low_entropy(past.get(\"teacher_class_entropy\"))\n", "",
        ("tests/test_health.py::test_low_diversity_warning_rule",),
        "a run resumed after a low-diversity check forgets it and warns a check late"),
    Mutation(
        "low-diversity-single-check", "dfad/health.py",
        "self.low_entropy_checks >= LOW_DIVERSITY_CHECKS", "self.low_entropy_checks >= 1",
        ("tests/test_health.py::test_low_diversity_warning_rule",),
        "one low-entropy check warns: a working CIFAR-10 run's single dip (0.45) becomes a false alarm"),
    Mutation(
        "cpuinfo-field-by-prefix", "dfad/provenance.py",
        "if key.strip() == field), \"\")",
        "if key.strip().startswith(field)), \"\")",
        ("tests/test_provenance.py::test_cpu_model_names_family_and_model_and_bf16_flags_are_read",),
        "result files record the CPU's model number from the 'model name' line"),
    Mutation(
        "imitation-without-no-grad", "dfad/methods/dfad.py",
        "        with torch.no_grad(), self.autocast():\n            # (noise() with no count",
        "        with self.autocast():\n            # (noise() with no count",
        (UR + "test_imitation_step_updates_only_the_student",),
        "the imitation step builds a graph through the generator (and fills its gradients)"),
    Mutation(
        "one-noise-batch-for-imitation", "dfad/methods/dfad.py",
        "if replayed else self.noise()))",
        'if replayed else self.__dict__.setdefault("_first_z", self.noise())))',
        (UR + "test_each_step_draws_a_fresh_noise_batch",),
        "every imitation step reuses the first noise batch"),
    Mutation(
        "mse-instead-of-l1", "dfad/tasks.py",
        "        return F.l1_loss(student_logits, teacher_logits)",
        "        return F.mse_loss(student_logits, teacher_logits)",
        (UR + "test_losses_are_l1_and_minus_l1",
         "tests/test_segmentation.py::test_generator_loss_is_minus_log_of_l1_plus_one"),
        "the discrepancy is MSE, not L1"),
    Mutation(
        "segmentation-loss-minus-l1", "dfad/tasks.py",
        "        return -torch.log(self.discrepancy(student_logits, teacher_logits) + 1)",
        "        return -self.discrepancy(student_logits, teacher_logits)",
        ("tests/test_segmentation.py::test_generator_loss_is_minus_log_of_l1_plus_one",
         UR + "test_segmentation_generation_step_minimises_minus_log_of_l1_plus_one"),
        "segmentation's generator loss is -L1, not -log(L1 + 1)"),
    Mutation(
        "phase-kernels-rows-swapped", "dfad/models/generators.py",
        "    rows = (torch.stack([w0, w1 + w2], 2), torch.stack([w0 + w1, w2], 2))",
        "    rows = (torch.stack([w0 + w1, w2], 2), torch.stack([w0, w1 + w2], 2))",
        SUBPIXEL, "sub-pixel path: even and odd output rows take each other's kernel rows"),
    Mutation(
        "phase-kernels-odd-column", "dfad/models/generators.py",
        "        kernels += [torch.stack([c0, c1 + c2], 3), torch.stack([c0 + c1, c2], 3)]",
        "        kernels += [torch.stack([c0, c1 + c2], 3), torch.stack([c0, c1 + c2], 3)]",
        SUBPIXEL, "sub-pixel path: odd output columns use the even columns' kernel"),
    Mutation(
        "combine-taps-even-rows-shift", "dfad/models/generators.py",
        "    even_rows = padded[:, :-2, :, 0] + padded[:, 1:-1, :, 1] + padded[:, 1:-1, :, 2]",
        "    even_rows = padded[:, 1:-1, :, 0] + padded[:, 1:-1, :, 1] + padded[:, 1:-1, :, 2]",
        TAPS, "per-tap path: the top tap of even rows reads row i instead of i - 1"),
    Mutation(
        "combine-taps-odd-cols-shift", "dfad/models/generators.py",
        "    odd_cols = rows[:, :, :, 1:-1, 0] + rows[:, :, :, 1:-1, 1] + rows[:, :, :, 2:, 2]",
        "    odd_cols = rows[:, :, :, 1:-1, 0] + rows[:, :, :, 1:-1, 1] + rows[:, :, :, 1:-1, 2]",
        TAPS, "per-tap path: the right tap of odd columns reads column j instead of j + 1"),
    Mutation(
        "few-output-conv-taps-transposed", "dfad/models/generators.py",
        "            dy, dx = divmod(tap, 3)",
        "            dx, dy = divmod(tap, 3)",
        (MODELS + "test_generator_fast_formulations_are_the_same_function_and_gradient[False-subpixel]",
         MODELS + "test_generator_fast_formulations_are_the_same_function_and_gradient[False-taps]"),
        "FewOutputConv2d (the image layer) applies the transposed 3x3 kernel"),
    # --- caught by assertions strengthened from "a file exists / a value in [0, 1]" ---
    Mutation(
        "teacher-metric-of-the-student", "dfad/runs.py",
        "    teacher_scores = metric_of(teacher) if metric_of is not None else None",
        "    teacher_scores = metric_of(method.student) if metric_of is not None else None",
        ("tests/test_your_model.py::test_python_api_distills_a_torchvision_teacher_into_a_registry_student",),
        "the summary's teacher metric is measured on another model"),
    Mutation(
        "tensorboard-without-steps", "dfad/engine/tensorboard.py",
        "                self.writer.add_scalar(key, value, step)",
        "                self.writer.add_scalar(key, value)",
        ("tests/test_your_model.py::test_python_api_takes_a_student_module_and_validates_inputs_up_front",),
        "TensorBoard scalars written without their iteration"),
    Mutation(
        "reproduce-mean-is-max", "dfad/reproduce.py",
        '            "mean": statistics.fmean(values),',
        '            "mean": max(values),',
        ("tests/test_baselines.py::test_reproduce_writes_the_table_and_reuses_finished_runs",),
        "a table row reports the best seed instead of the mean over seeds"),
    Mutation(
        "sample-grid-half-the-noise", "dfad/methods/dfad.py",
        "            return self.generator(self.grid_noise)",
        "            return self.generator(self.grid_noise[: len(self.grid_noise) // 2])",
        (UR + "test_sample_images_leave_training_state_untouched",
         "tests/test_cli.py::test_run_folder_is_self_describing"),
        "sample grids show half of distill.sample_grid_size images"),
    Mutation(
        "sample-grid-noise-redrawn", "dfad/methods/dfad.py",
        "            return self.generator(self.grid_noise)",
        "            self.grid_noise = torch.randn(self.grid_noise.shape, generator=torch.Generator().manual_seed(\n"
        "                int(self.grid_noise.abs().sum() * 1000)))\n"
        "            return self.generator(self.grid_noise)",
        (UR + "test_sample_images_leave_training_state_untouched",),
        "each validation's sample grid draws new noise (without touching the training RNG)"),
    Mutation(
        "summary-command-not-retypable", "dfad/provenance.py",
        '        program = "python -m dfad"',
        '        program = f"python {program}"',
        ("tests/test_cli.py::test_tiny_digits_distillation_beats_chance_by_far",),
        "the summary's command is not the one the user typed (python -m dfad)"),
    Mutation(
        "resume-repeats-an-iteration", "dfad/engine/callbacks.py",
        '        state.iteration, state.last_metric = saved["iteration"], saved["last_metric"]',
        '        state.iteration, state.last_metric = saved["iteration"] - 1, saved["last_metric"]',
        ("tests/test_resume.py::test_crashed_run_resumes_bit_identically",),
        "a resumed run repeats the last saved iteration"),
    Mutation(
        "fidelity-config-drift", "dfad/configs/nyuv2.yaml",
        "  generator_schedule: {name: multistep, milestones: [4950, 9950, 14950], gamma: 0.3}",
        "  generator_schedule: {name: multistep, milestones: [4950, 9950, 14950], gamma: 0.1}",
        ("tests/test_fidelity.py::test_the_table_states_what_each_config_holds[nyuv2]",),
        "a paper config drifts from docs/fidelity.md (NYUv2's generator decays by 0.1, not 0.3)"),
    Mutation(
        "plus-preset-drifts-from-its-row", "dfad/configs/cifar10_cpu_plus.yaml",
        "generator_ema: 0.9, augment: true}",
        "generator_ema: 0.99, augment: true}",
        ("tests/test_config.py::test_shipped_plus_preset_is_the_side_by_side_tables_combination_row",),
        "the shipped cifar10_cpu_plus preset is not the combination the side-by-side table measured"),
    Mutation(
        "method-options-unchecked", "dfad/config.py",
        '        check_config_options({"distill.method": (self.distill.method, "distill.method_args", self.distill.method_args)})\n',
        "",
        ("tests/test_config.py::test_a_misspelt_method_option_is_a_config_error_naming_the_options",),
        "a misspelt distill.method_args name passes validation (and fails later with a TypeError, after the run folder exists)"),
    Mutation(
        "method-options-ignore-parents", "dfad/methods/base.py",
        "            if not any(p.kind is p.VAR_KEYWORD for p in parameters):\n                break\n",
        "            break\n",
        ("tests/test_config.py::test_a_misspelt_method_option_is_a_config_error_naming_the_options",),
        "a method that passes **kwargs to its parent (RANDOM to DFAD) is told it takes none of the parent's options"),
    Mutation(
        "camvid-plus-row-misspelt", "dfad/configs/tables/table_camvid_cpu.yaml",
        "generator_ema: 0.9, augment: true}",
        "generator_ema: 0.9, augmnt: true}",
        ("tests/test_dfad_options.py::test_every_row_of_the_side_by_side_tables_builds_its_method[camvid_cpu]",),
        "a table row names an option its method does not take"),
    Mutation(
        "generator-b-without-dcgan-init", "dfad/models/generators.py",
        "        dcgan_init(self)\n",
        "\n",
        ("tests/test_segmentation.py::test_generator_b_is_the_authors_dcgan_generator",),
        "GeneratorB keeps PyTorch's default initialisation instead of DCGAN's"),
    Mutation(
        "generator-b-final-batchnorm", "dfad/models/generators.py",
        "nn.Sequential(nn.Conv2d(ngf, channels, kernel_size=3, padding=1), nn.Tanh()))",
        "nn.Sequential(nn.Conv2d(ngf, channels, kernel_size=3, padding=1), nn.Tanh(),\n"
        "                                       nn.BatchNorm2d(channels, affine=False)))",
        ("tests/test_segmentation.py::test_generator_b_is_the_authors_dcgan_generator",),
        "GeneratorB ends with a BatchNorm (dfad's earlier generator), not at Tanh"),
    Mutation(
        "mobilenet-dilation-rule", "dfad/models/deeplab.py",
        "            stride, dilation = 1, rate\n",
        "            stride, dilation = 1, rate * 2\n",
        ("tests/test_segmentation.py::test_deeplab_networks_have_the_authors_strides_and_atrous_rates",),
        "the student's MobileNetV2 dilates each group by the rate after it, not before (not the authors' rule)"),
    Mutation(
        "focal-loss-gamma-1", "dfad/tasks.py",
        "ignore_index: int = -100, gamma: float = 2.0)",
        "ignore_index: int = -100, gamma: float = 1.0)",
        ("tests/test_segmentation.py::test_focal_loss_is_the_authors",),
        "the segmentation teacher's focal loss uses gamma 1, not the authors' 2"),
    Mutation(
        "shorter-side-ignored", "dfad/data/segmentation.py",
        "        scale = shorter_side / min(images_t.shape[-2:])\n",
        "        pass\n",
        ("tests/test_segmentation.py::test_shorter_side_resizes_whole_frames_like_torchvisions_resize",),
        "data.shorter_side does not resize the frames"),
    Mutation(
        "caltech-split-rounds", "dfad/data/caltech.py",
        "        n_test = min(max(int(len(members) * test_fraction), 2), len(members) - 1)\n",
        "        n_test = min(max(round(len(members) * test_fraction), 1), len(members) - 1)\n",
        ("tests/test_caltech.py::test_split_is_stratified_disjoint_and_fixed",
         "tests/test_caltech.py::test_stratified_split_covers_every_sample_once"),
        "Caltech-101 test counts rounded (at least 1), not the authors' rounded-down (at least 2)"),
    Mutation(
        "schedule-identity-reads-every-field", "dfad/run_identity.py",
        "    return {k: v for k, v in flat.items() if k not in unread}\n",
        "    return dict(flat)\n",
        ("tests/test_resume.py::test_run_identity_ignores_what_a_run_does_not_depend_on",),
        "a run made with a cosine schedule counts as different when unused milestones change"),
    Mutation(
        "momentum-generator-unused-in-imitation", "dfad/methods/dfad.py",
        "        generate = self.generate if self.generate_average is None else self.generate_average\n",
        "        generate = self.generate\n",
        ("tests/test_dfad_options.py::test_the_momentum_generator_makes_the_imitation_samples_and_follows_the_live_one",),
        "generator_ema builds an average that never makes a sample"),
    Mutation(
        "replay-memory-never-filled", "dfad/methods/dfad.py",
        "            self.replay.add(images, teacher_out)\n",
        "            pass\n",
        ("tests/test_dfad_options.py::test_replay_mixes_stored_samples_with_their_teacher_outputs_into_imitation",),
        "replay_size on, but nothing is ever replayed"),
    Mutation(
        "augmentation-not-in-generation-step", "dfad/methods/dfad.py",
        "                images = self.augmented(generated)\n",
        "                images = generated\n",
        ("tests/test_dfad_options.py::test_augmentation_reaches_both_steps",),
        "the generator is not trained for the augmented view the student sees"),
    Mutation(
        "averaged-student-not-validated", "dfad/engine/callbacks.py",
        "                record[f\"{name}_{state.metric_name}\"] = self.validate(model)\n",
        "                pass\n",
        ("tests/test_dfad_options.py::test_the_averaged_student_is_reported_beside_the_raw_one",),
        "student_ema on, but its accuracy is never reported"),
    Mutation(
        "replay-state-not-resumed", "dfad/methods/dfad.py",
        "            part.load_state_dict(state[name])\n",
        "            pass\n",
        ("tests/test_dfad_options.py::test_a_run_with_every_option_resumes_bit_identically",),
        "a resumed run with replay and moving averages starts them afresh"),
    Mutation(
        "method-identity-not-derived-from-parts", "dfad/methods/base.py",
        "        cls.unused_config_keys = tuple(key for part, keys in PART_CONFIG_KEYS.items() if part not in cls.parts\n",
        "        cls.unused_config_keys = tuple(key for part, keys in PART_CONFIG_KEYS.items() if False\n",
        ("tests/test_toy_method.py::test_a_method_of_one_class_runs_from_the_cli_and_learns",),
        "a method's run identity counts the config keys of parts it never builds"),
    Mutation(
        "undeclared-parts-handed-out", "dfad/assembly.py",
        "        if part not in self.declared:\n",
        "        if False:\n",
        ("tests/test_toy_method.py::test_a_method_may_ask_only_for_the_parts_it_names",),
        "a method gets parts it does not name, so its declaration (and its identity) can be wrong"),
    Mutation(
        "skipped-fp16-step-advances-schedule", "dfad/methods/base.py",
        "            if not steps or skips < steps:\n",
        "            if True:\n",
        ("tests/test_precision.py::test_a_step_the_scaler_skips_does_not_advance_that_models_schedule",),
        "a step the fp16 gradient scaler skipped still advances that model's learning-rate schedule"),
    Mutation(
        "bn-statistics-not-averaged-over-ranks", "dfad/engine/callbacks.py",
        "            state.distributed.average_buffers(model)\n",
        "            pass\n",
        ("tests/test_distributed.py::test_ranks_stay_identical_and_each_step_reduces_only_its_own_model",),
        "under torchrun each rank keeps its own BatchNorm running statistics"),
    Mutation(
        "nan-stops-only-its-rank", "dfad/engine/callbacks.py",
        "        diverged = distributed.first_non_finite(state.losses)",
        "        diverged = Distributed().first_non_finite(state.losses)",
        ("tests/test_distributed.py::test_nan_loss_on_one_rank_stops_every_rank_with_the_same_message",),
        "a NaN/Inf loss on one rank stops that rank alone (the others hang or fail differently)"),
    Mutation(
        "health-leaves-batchnorm-moved", "dfad/health.py",
        "                stack.enter_context(preserved_buffers(m))\n",
        "                pass\n",
        ("tests/test_health.py::test_agreement_is_one_for_a_copy_of_the_teacher_and_nothing_changes",),
        "measuring health moves the generator's BatchNorm statistics (training would change)"),
    Mutation(
        "health-warning-repeated", "dfad/health.py",
        "        new = {kind: message for kind, message in found.items() if kind not in self.active}\n",
        "        new = dict(found)\n",
        ("tests/test_health.py::test_collapse_warning_rule",),
        "a health warning is printed at every validation instead of once when it starts"),
    Mutation(
        "health-not-recorded", "dfad/engine/callbacks.py",
        '            record.update({k: v for k, v in health.items() if k in HEALTH_FIELDS})\n',
        "            pass\n",
        ("tests/test_health.py::test_a_run_records_health_in_metrics_summary_progress_and_report",),
        "the health signal is measured but not written to metrics, summary and report"),
    Mutation(
        "own-student-program-not-written", "dfad/runs.py",
        "    write_student_program(run.path, student)\n",
        "    pass\n",
        ("tests/test_export.py::test_a_run_with_your_own_student_class_keeps_its_program",),
        "a run whose student dfad cannot rebuild leaves nothing that `dfad export` can start from"),
    Mutation(
        "class-balance-not-in-generator-loss", "dfad/methods/dfad.py",
        "            added[\"generator_class_balance\"] = (self.class_balance, class_balance_loss(teacher_out.float()))\n",
        "            added[\"generator_class_balance\"] = (0.0, class_balance_loss(teacher_out.float()))\n",
        ("tests/test_priors.py::test_class_balance_alone_raises_the_entropy_of_the_teachers_classes",),
        "the class-balance option is logged but never reaches the generator's gradient"),
    Mutation(
        "class-balance-sign-flipped", "dfad/methods/priors.py",
        "    return (probs * torch.log(probs.clamp_min(1e-12))).sum()\n",
        "    return -(probs * torch.log(probs.clamp_min(1e-12))).sum()\n",
        ("tests/test_priors.py::test_class_balance_loss_is_minus_log_c_when_balanced_and_zero_for_one_class",
         "tests/test_priors.py::test_class_balance_alone_raises_the_entropy_of_the_teachers_classes"),
        "the class-balance term rewards one class instead of all of them"),
    Mutation(
        "bn-prior-ignores-variance", "dfad/methods/priors.py",
        "                          + torch.linalg.vector_norm(var - module.running_var.float()))\n",
        "                          + 0 * torch.linalg.vector_norm(var - module.running_var.float()))\n",
        ("tests/test_priors.py::test_bn_statistics_are_zero_when_the_batch_matches_the_running_statistics_and_see_variance",),
        "the BatchNorm prior matches the teacher's means but not its variances"),
    Mutation(
        "stall-never-warned", "dfad/health.py",
        "        return self.checks >= STALL_CHECKS and self.best_agreement < STALL_AGREEMENT\n",
        "        return False\n",
        ("tests/test_health.py::test_stall_warning_rule",),
        "a student that never learns (a dead network) raises no warning"),
    Mutation(
        "miou-counts-absent-classes", "dfad/tasks.py",
        "        present = [v for v in self.per_class() if v == v]  # NaN: class never seen nor predicted\n",
        "        present = [v if v == v else 0.0 for v in self.per_class()]\n",
        ("tests/test_health.py::test_segmentation_agreement_miou_weighs_each_class_alike",),
        "mIoU (the test metric and agreement_miou) averages in classes neither side predicts (0 each): a perfect student reads below 1"),
    Mutation(
        "miou-is-pixel-agreement", "dfad/health.py",
        "        health[\"agreement_miou\"] = agreement_miou.compute()\n",
        "        health[\"agreement_miou\"] = float((t == s).double().mean())\n",
        ("tests/test_health.py::test_segmentation_agreement_miou_weighs_each_class_alike",),
        "agreement_miou is pixel agreement again: a majority-class student reads high"),
    Mutation(
        "memory-never-trimmed", "dfad/health.py",
        "        del self.batches[:-self.checks]\n",
        "        pass\n",
        ("tests/test_health.py::test_memory_agreement_starts_at_the_second_check_and_keeps_the_last_checks",
         "tests/test_health.py::test_memory_stays_under_its_byte_budget_and_round_trips"),
        "the health memory grows with every check (checkpoints grow without bound)"),
    Mutation(
        "momentum-generator-left-eager", "dfad/methods/dfad.py",
        "            compile_generator(self.generator_average.average, self.device) if compiled\n",
        "            self.generator_average.average if compiled\n",
        ("tests/test_dfad_options.py::test_a_compiled_run_makes_its_imitation_samples_with_a_compiled_momentum_generator",),
        "with generator_ema, a compiled run makes its samples with the eager per-tap generator (1.29x an iteration)"),
    Mutation(
        "imitation-bypasses-compiled-average", "dfad/methods/dfad.py",
        "        generate = self.generate if self.generate_average is None else self.generate_average\n",
        "        generate = self.generate if self.generate_average is None else self.generator_average.average\n",
        ("tests/test_dfad_options.py::test_a_compiled_run_makes_its_imitation_samples_with_a_compiled_momentum_generator",),
        "the compiled momentum generator is built but the imitation step calls the eager one"),
    Mutation(
        "run-folder-lock-shared", "dfad/engine/folder_lock.py",
        "fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)",
        "fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)",
        ("tests/test_cli.py::test_a_run_folder_in_use_is_refused_to_a_second_process",),
        "a second process writes (and with --force clears) a run folder another run is writing"),
    Mutation(
        "run-folder-lock-never-released", "dfad/engine/folder_lock.py",
        "            self._finalizer()  # runs _release at most once per lock\n",
        "            pass\n",
        ("tests/test_cli.py::test_a_run_folder_in_use_is_refused_to_a_second_process",),
        "a finished run in a long-lived process (a notebook) keeps its folder from every other process"),
    Mutation(
        "decoded-cache-shared-temporary", "dfad/data/cifar.py",
        "    handle, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=\".tmp\")\n"
        "    os.close(handle)\n"
        "    tmp = Path(tmp_name)\n",
        "    tmp = path.with_suffix(\".tmp\")\n",
        ("tests/test_cifar.py::test_two_runs_filling_the_decoded_cache_at_once_both_succeed",),
        "two runs started together crash decoding the same image folder"),
]



def check_snippets(mutations: list[Mutation]) -> list[str]:
    """Problems that make a mutation meaningless: snippet absent or ambiguous, result not Python."""
    problems = []
    for m in mutations:
        path = ROOT / m.file
        if not path.is_file():
            problems.append(f"{m.name}: {m.file} does not exist")
            continue
        source = path.read_text()
        count = source.count(m.original)
        if count != 1:
            problems.append(f"{m.name}: the original snippet occurs {count} times in {m.file} (must be once); "
                            f"the code changed: update the entry\n    snippet: {m.original!r}")
            continue
        if m.mutated == m.original:
            problems.append(f"{m.name}: the mutated snippet equals the original")
            continue
        if path.suffix != ".py":  # a config file: its test reads it
            continue
        try:
            compile(source.replace(m.original, m.mutated), str(path), "exec")
        except SyntaxError as exc:
            problems.append(f"{m.name}: the mutated {m.file} does not compile ({exc})")
    return problems


def make_copy(dest: Path) -> None:
    dest.mkdir(parents=True)
    for entry in ROOT.iterdir():
        if entry.name in NOT_COPIED or entry.name.endswith(".egg-info"):
            continue
        target = dest / entry.name
        if entry.is_symlink():
            target.symlink_to(os.readlink(entry))  # e.g. configs -> dfad/configs, relative
        elif entry.is_dir():
            shutil.copytree(entry, target, symlinks=True, ignore=IGNORED)
        else:
            shutil.copy2(entry, target)
    # Records each test's outcome by node id (a plugin, so nothing in the copy's tests changes).
    (dest / "_mutation_outcomes.py").write_text(OUTCOME_PLUGIN)


OUTCOME_PLUGIN = '''
import json, os
_outcomes = {}

def pytest_runtest_logreport(report):
    if report.failed:
        _outcomes[report.nodeid] = "failed"
    elif report.skipped and report.nodeid not in _outcomes:
        _outcomes[report.nodeid] = "skipped"
    elif report.when == "call" and report.nodeid not in _outcomes:
        _outcomes[report.nodeid] = "passed"

def pytest_sessionfinish(session):
    with open(os.environ["DFAD_MUTATION_OUTCOMES"], "w") as f:
        json.dump(_outcomes, f)
'''


def copy_env(copy: Path) -> dict[str, str]:
    env = {**os.environ}
    env["PYTHONPATH"] = os.pathsep.join([str(copy), *filter(None, [env.get("PYTHONPATH")])])
    # conftest.py finds the offline datasets next to the project root; the copy has none there.
    env.setdefault("DFAD_TEST_SHARED_DATA", str(ROOT.parent / "shared" / "data"))
    return env


def run_tests(copy: Path, tests: list[str], timeout: float) -> tuple[str, dict[str, str], str, float]:
    """(status, outcome per node id, output tail, seconds); status: ran | timeout | pytest exit N."""
    outcomes_file = copy / "_outcomes.json"
    env = {**copy_env(copy), "DFAD_MUTATION_OUTCOMES": str(outcomes_file)}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "_mutation_outcomes", "-p", "no:cacheprovider",
               "--no-header", "-rN", "--tb=line", *tests]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        partial = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or ""
        return f"timeout after {timeout:.0f} s", {}, partial[-3000:], time.perf_counter() - start
    seconds = time.perf_counter() - start
    output = (done.stdout + done.stderr)[-3000:]
    outcomes = json.loads(outcomes_file.read_text()) if outcomes_file.is_file() else {}
    # 0: all passed, 1: some failed; anything else (collection error, unknown node id) is no verdict.
    status = "ran" if done.returncode in (0, 1) else f"pytest exit {done.returncode}"
    return status, outcomes, output, seconds


def select(outcomes: dict[str, str], wanted: str) -> dict[str, str]:
    return {k: v for k, v in outcomes.items() if k == wanted or k.startswith(wanted + "[")}


def imported_dfad(copy: Path) -> str:
    done = subprocess.run([sys.executable, "-c", "import dfad; print(dfad.__file__)"], cwd=copy,
                          env=copy_env(copy), capture_output=True, text=True, timeout=300)
    return done.stdout.strip() or done.stderr[-500:]


def git_state() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown commit"
    return f"{commit} + uncommitted changes" if dirty else commit


def verdict(m: Mutation, status: str, outcomes: dict[str, str]) -> tuple[str, list[str]]:
    """(result, failing node ids)."""
    if status != "ran":
        return f"error ({status})", []
    per_test = {t: select(outcomes, t) for t in m.tests}
    missing = [t for t, found in per_test.items() if not found]
    if missing:
        return f"error (not run: {', '.join(missing)})", []
    results = [v for found in per_test.values() for v in found.values()]
    failing = sorted(k for found in per_test.values() for k, v in found.items() if v == "failed")
    if all(v == "failed" for v in results):
        return "caught", failing
    return ("PARTLY caught" if failing else "SURVIVED"), failing


def update_readme(rows: list[tuple[Mutation, str, float]], stamp: str, total: float) -> None:
    start, end = "<!-- mutation-results:start -->", "<!-- mutation-results:end -->"
    text = README.read_text()
    if start not in text or end not in text:
        raise SystemExit(f"{README} lacks the {start} / {end} markers")
    lines = [start, "", f"Last run: {stamp}; {sum(r == 'caught' for _, r, _ in rows)} of {len(rows)} caught, "
             f"{total / 60:.1f} minutes in all.", "",
             "| mutation | file | what it breaks | tests that catch it | result |", "| --- | --- | --- | --- | --- |"]
    for m, result, seconds in rows:
        tests = "<br>".join(f"`{t.split('::')[0].removeprefix('tests/')}::{t.split('::')[1]}`" for t in m.tests)
        lines.append(f"| `{m.name}` | `{m.file}` | {m.what} | {tests} | {result} ({seconds:.0f} s) |")
    lines += ["", end]
    before, rest = text.split(start, 1)
    README.write_text(before + "\n".join(lines) + rest.split(end, 1)[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run these mutations only")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--no-baseline", action="store_true", help="skip the unmutated run of the selections")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per pytest run (default 900)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copies (their paths are printed)")
    parser.add_argument("--update-readme", action="store_true",
                        help="write the results table into tests/README.md (all mutations only)")
    args = parser.parse_args(argv)

    names = [m.name for m in MUTATIONS]
    assert len(set(names)) == len(names), "duplicate mutation names"
    if args.only:
        unknown = sorted(set(args.only) - set(names))
        if unknown:
            parser.error(f"unknown mutation(s) {', '.join(unknown)}; see --list")
    chosen = [m for m in MUTATIONS if not args.only or m.name in args.only]
    if args.update_readme and len(chosen) != len(MUTATIONS):
        parser.error("--update-readme records a run of every mutation; drop --only")
    if args.list:
        for m in chosen:
            print(f"{m.name}  ({m.file}): {m.what}")
            for t in m.tests:
                print(f"    {t}")
        return 0

    problems = check_snippets(chosen)
    if problems:
        print("error: the mutation list does not match the current source:", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 2

    stamp = f"{time.strftime('%Y-%m-%d %H:%M')}, commit {git_state()}"
    work = Path(tempfile.mkdtemp(prefix="dfad-mutations-"))
    began = time.perf_counter()
    failed_baseline: set[str] = set()
    try:
        if not args.no_baseline:
            copy = work / "baseline"
            make_copy(copy)
            where = imported_dfad(copy)
            if not where.startswith(str(copy)):
                print(f"error: the copy imports dfad from {where}, not from {copy}", file=sys.stderr)
                return 2
            union = list(dict.fromkeys(t for m in chosen for t in m.tests))
            status, outcomes, output, seconds = run_tests(copy, union, args.timeout)
            not_passing = {k: v for k, v in outcomes.items() if v != "passed"}
            missing = [t for t in union if not select(outcomes, t)]
            print(f"baseline (no mutation): {len(outcomes)} tests, {seconds:.0f} s, "
                  f"{'all passed' if status == 'ran' and not not_passing and not missing else 'NOT all passed'}")
            if status != "ran" or not_passing or missing:
                for k, v in not_passing.items():
                    print(f"  {v}: {k}")
                for t in missing:
                    print(f"  not run: {t}")
                if status != "ran":
                    print(f"  {status}\n{output}")
                failed_baseline = set(not_passing) | set(missing)
                if status != "ran" or missing:
                    return 2
        rows = []
        for i, m in enumerate(chosen, 1):
            copy = work / m.name
            make_copy(copy)
            path = copy / m.file
            path.write_text(path.read_text().replace(m.original, m.mutated))
            status, outcomes, output, seconds = run_tests(copy, list(m.tests), args.timeout)
            result, failing = verdict(m, status, outcomes)
            if any(select({k: "" for k in failed_baseline}, t) for t in m.tests):
                result = "error (a selected test fails without the mutation)"
            rows.append((m, result, seconds))
            print(f"[{i}/{len(chosen)}] {m.name}: {result} ({seconds:.0f} s)")
            if result != "caught":
                for t in m.tests:
                    for k, v in select(outcomes, t).items():
                        print(f"    {v}: {k}")
                if result.startswith("error"):
                    print("    " + output.replace("\n", "\n    "))
            if not args.keep:
                shutil.rmtree(copy, ignore_errors=True)
    finally:
        if args.keep:
            print(f"copies kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    total = time.perf_counter() - began
    caught = sum(r == "caught" for _, r, _ in rows)
    print(f"\n{caught} of {len(rows)} mutations caught in {total / 60:.1f} minutes ({stamp})")
    for m, result, _ in rows:
        if result != "caught":
            print(f"  {result}: {m.name} ({m.file})")
    if args.update_readme:
        update_readme(rows, stamp, total)
        print(f"results written to {README}")
    return 0 if caught == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
