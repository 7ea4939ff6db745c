"""Data-Free Adversarial Distillation (Fang et al., 2019): the student imitates the teacher on
generated samples while the generator seeks samples on which they disagree most."""
from __future__ import annotations

import inspect
import warnings
from contextlib import contextmanager
from statistics import fmean

import torch
from torch import nn

from ..engine.compile import choose_eager_formulations, compile_frozen, compile_generator
from ..engine.state import preserved_buffers
from ..errors import DfadError
from ..health import SampleMemory, health_noise, measure_health
from .base import METHODS, Method, freeze
from .averaging import MovingAverage
from .adversarial import GENERATOR_LOSSES
from .imitation import IMITATION_LOSSES
from .replay import ReplayMemory
from .sample_augment import flip_and_shift
from .priors import BatchNormStatistics, class_balance_loss, confidence_loss, total_variation_loss


@contextmanager
def no_param_grads(model: nn.Module):
    """Let gradients flow *through* a model without computing its parameter gradients."""
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(model.parameters(), flags):
            p.requires_grad_(flag)


# DFAD's options on the generator's loss (see DFAD's docstring); their constructor defaults are off.
GENERATOR_OPTIONS = ("class_balance", "confidence", "bn_prior", "bn_prior_optional", "total_variation",
                     "total_variation_floor", "fallback_total_variation", "generator_ema", "generator_loss")
# Measured in results/dfad_plus/README.md ("Why `kl` collapses, ..."): a KL student cannot follow what the
# paper's generator loss pays for, the logits of classes the teacher gives ~0 probability.
KL_WITH_LOGIT_GENERATOR = (
    "imitation_loss kl with generator_loss task: the generator is paid for logit gaps that a KL student "
    "is not taught to close (classes the teacher gives no probability), and on MNIST it collapsed to one "
    "sample (0.15 accuracy); set distill.method_args.generator_loss=kl, the KL the student minimises")


def warn_of_loss_pairing(imitation_loss: str, generator_loss: str, trains_generator: bool) -> None:
    if imitation_loss == "kl" and generator_loss == "task" and trains_generator:
        warnings.warn(KL_WITH_LOGIT_GENERATOR, stacklevel=3)


# Options on DFAD's imitation step (methods with a student step of their own would ignore them);
# their defaults are DFAD's constructor's (`option_defaults`).
IMITATION_OPTIONS = ("imitation_loss", "temperature", "replay_size", "replay_share", "augment", "augment_shift")


def option_defaults(names) -> dict:
    """The default value of each named option, as DFAD's constructor declares it."""
    parameters = inspect.signature(DFAD.__init__).parameters
    return {name: parameters[name].default for name in names}


def check_weights(**values) -> None:
    for name, value in values.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            raise DfadError(f"distill.method_args.{name} must be a number >= 0 (0 = off), got {value!r}")


def check_fractions(**values) -> None:
    for name, value in values.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < 1:
            raise DfadError(f"distill.method_args.{name} must be a number in [0, 1) (0 = off), got {value!r}")


def refuse_generator_options(method: str, arguments: dict) -> None:
    """Methods built on DFAD's plumbing whose generator objective is not DFAD's ignore its options
    (a value equal to DFAD's default, e.g. `generator_loss: task`, changes nothing and passes)."""
    defaults = option_defaults(GENERATOR_OPTIONS)
    for name in GENERATOR_OPTIONS:
        if name in arguments and arguments[name] != defaults[name]:
            raise DfadError(f"distill.method_args.{name} is an option of method 'dfad', not of '{method}'; remove it")


@METHODS.register("dfad")
class DFAD(Method):
    """One iteration = `imitation_steps` student updates, then one generator update.

    Imitation: x = G(z) without gradient into G; minimise discrepancy(S(x), T(x)) over S.
    Generation: x = G(z); minimise task.generator_loss(S(x), T(x)) (= -L1) over G, with
    gradients flowing through T and S but only G stepped. Every step draws a fresh z.

    Options beyond the paper (0 = off = the paper's DFAD), added to the generator's loss:
    - class_balance: weight of the negative entropy of the teacher's class distribution averaged
      over the batch (DAFL's information-entropy term, Chen et al. 2019): pushes the generator
      towards samples of every class, out of a start where the teacher sees one class only.
    - confidence: weight of the cross-entropy of the teacher's outputs against their own argmax
      (DAFL's one-hot term): samples the teacher finds typical of a class.
    - bn_prior: weight of the distance between the batch statistics at the teacher's BatchNorm
      layers and their running statistics (DeepInversion, Yin et al. 2020; DFQ): pushes the
      samples towards the statistics of the teacher's training data.
    - bn_prior_optional: with a teacher whose BatchNorm statistics are out of reach (none, or a
      TorchScript file), run without the prior (and say so) instead of refusing: the no-data
      preset's setting, where the teacher is whatever the user brings.
    - total_variation: weight of the generated images' total variation (DeepInversion's image
      prior): smoother samples, where a teacher without BatchNorm gives the prior above nothing
      to read.
    - total_variation_floor: only total variation above this level is penalised (0: all of it),
      in the units of the images the teacher sees (normalised): a prior that keeps samples from
      being noise without flattening them.
    - fallback_total_variation: the total_variation weight of a run whose optional bn_prior is
      out of reach: the no-data preset's generic image prior for teachers without BatchNorm,
      leaving runs with the BatchNorm prior unchanged.
    - imitation_loss: what the student minimises, `l1` (the paper) or `kl` at `temperature`
      (methods/imitation.py); the generator keeps its own loss (`generator_loss`): pair `kl`
      with `generator_loss: kl`, as the paper's logit L1 collapsed a KL student (warned).
    - generator_loss: what the generator maximises, `task` (the paper's L1 bound) or a bounded
      discrepancy between the class distributions, `probability_l1`, or `kl` (methods/adversarial.py).

    Options on what the student learns from and what is reported (0 / False = off):
    - generator_ema: momentum of a moving average of the generator that makes the imitation
      samples (MAD, Do et al. 2022); the generation step still trains the live generator. It
      fights the student forgetting what the generator showed it before it moved on.
    - replay_size: samples kept in a memory of past imitation batches and the teacher's outputs
      on them (CMI's memory bank, Fang et al. 2021; methods/replay.py); `replay_share` of each
      imitation batch is then drawn from it instead of generated (they cost no generator or
      teacher pass).
    - augment: random horizontal flips and shifts of up to `augment_shift` pixels (default 1/8 of
      the image side) of the generated samples, in imitation and, differentiably, in the
      generation step (methods/sample_augment.py).
    - student_ema: decay per iteration of a moving average of the student, validated beside the
      raw student (`student_ema_<metric>`; torchvision's --model-ema).
    """

    parts = ("student", "student_optimizer", "generator", "generator_optimizer")

    @classmethod
    def from_config(cls, parts) -> "DFAD":
        dc = parts.cfg.distill
        built = {"student": parts.student(), "generator": parts.generator()}
        for model in ("student", "generator"):
            if f"{model}_optimizer" in cls.parts:
                built[f"{model}_optimizer"], built[f"{model}_scheduler"] = parts.optimizer(model)
        choose_eager_formulations(built["generator"], parts.device, parts.cfg.precision)
        forward = compile_generator(built["generator"], parts.device, parts.cfg.precision) if dc.compile else None
        teacher_forward = compile_frozen(parts.teacher, parts.device) if dc.compile else None
        return cls(**built, nz=dc.nz, batch_size=parts.batch_size_per_process, grid_seed=parts.cfg.seed,
                   generator_forward=forward, teacher_forward=teacher_forward,
                   generation_student_bn=dc.generation_student_bn, **parts.common(), **dc.method_args)

    def __init__(self, *, teacher: nn.Module, student: nn.Module, generator: nn.Module, task,
                 student_optimizer: torch.optim.Optimizer, student_scheduler, batch_size: int, nz: int,
                 generator_optimizer: torch.optim.Optimizer | None = None, generator_scheduler=None,
                 imitation_steps: int = 5, device: torch.device | str = "cpu", grid_size: int = 64,
                 grid_seed: int = 0, generator_forward=None, teacher_forward=None, precision: str = "fp32",
                 generation_student_bn: str = "train", class_balance: float = 0.0, confidence: float = 0.0,
                 bn_prior: float = 0.0,
                 bn_prior_optional: bool = False, total_variation: float = 0.0,
                 total_variation_floor: float = 0.0, fallback_total_variation: float = 0.0,
                 imitation_loss: str = "l1", temperature: float = 1.0, generator_loss: str = "task",
                 generator_ema: float = 0.0,
                 student_ema: float = 0.0, replay_size: int = 0, replay_share: float = 0.5, augment: bool = False,
                 augment_shift: int | None = None):
        if generation_student_bn not in ("train", "eval"):
            raise ValueError(f"generation_student_bn must be 'train' or 'eval', got {generation_student_bn!r}")
        check_weights(class_balance=class_balance, confidence=confidence, bn_prior=bn_prior,
                      total_variation=total_variation, total_variation_floor=total_variation_floor,
                      fallback_total_variation=fallback_total_variation, replay_size=replay_size,
                      augment_shift=augment_shift or 0)
        check_fractions(generator_ema=generator_ema, student_ema=student_ema, replay_share=replay_share)
        if not isinstance(temperature, (int, float)) or temperature <= 0:
            raise DfadError(f"distill.method_args.temperature must be a number > 0, got {temperature!r}")
        self.imitation_loss = IMITATION_LOSSES.get(imitation_loss)
        warn_of_loss_pairing(imitation_loss, generator_loss, trains_generator=generator_optimizer is not None)
        self.generator_loss = GENERATOR_LOSSES.get(generator_loss)
        self.temperature = float(temperature)
        self.teacher = freeze(teacher)
        self.class_balance = float(class_balance)
        self.confidence = float(confidence)
        self.total_variation = float(total_variation)
        self.total_variation_floor = float(total_variation_floor)
        self.bn_statistics = self._batchnorm_statistics(bn_prior, bn_prior_optional, fallback_total_variation)
        if bn_prior > 0 and self.bn_statistics is None:
            self.total_variation = float(fallback_total_variation) or self.total_variation
        self.bn_prior = float(bn_prior)
        self.generation_student_bn = generation_student_bn
        self.student, self.generator, self.task = student, generator, task
        # What the training steps call: the generator itself, or a compiled view of it.
        self.generate = generator if generator_forward is None else generator_forward
        # What imitation steps call for the teacher's outputs (no gradient): the teacher, or a compiled view.
        self.teacher_forward = self.teacher if teacher_forward is None else teacher_forward
        self.batch_size, self.nz, self.imitation_steps = batch_size, nz, imitation_steps
        self.device = torch.device(device)
        self.evaluated = student
        self.models = {"student": student, "generator": generator}
        # A method that keeps the generator fixed (RANDOM) has neither optimiser nor schedule for it.
        self.optimizers = {"student": student_optimizer, "generator": generator_optimizer}
        self.schedulers = {"student": student_scheduler, "generator": generator_scheduler}
        for group in (self.optimizers, self.schedulers):
            if group["generator"] is None:
                del group["generator"]
        self.setup_precision(precision, self.device)
        self.augment, self.augment_shift = bool(augment), augment_shift
        self._setup_averages_and_replay(generator_ema, student_ema, replay_size, replay_share, grid_seed,
                                        compiled=self.generate is not generator)
        # Fixed noise for sample grids, from its own RNG so that drawing it never shifts training.
        self.grid_noise = torch.randn(grid_size, nz, generator=torch.Generator().manual_seed(grid_seed)).to(self.device)
        self.health_noise = health_noise(nz, grid_seed).to(self.device)
        self.health_memory = SampleMemory()
        self.added_generator_terms: dict[str, float] = {}

    def _setup_averages_and_replay(self, generator_ema: float, student_ema: float, replay_size: int,
                                   replay_share: float, seed: int, compiled: bool = False) -> None:
        # The moving averages are models of the run (checkpointed, rebuilt like the others).
        self.generator_average = MovingAverage(self.generator, generator_ema) if generator_ema else None
        # The average makes every imitation sample: compiled like the generator when it is (the copy
        # inherits the per-tap up-convolutions, which are slow unless compiled: 1.29x an iteration).
        self.generate_average = None if self.generator_average is None else (
            compile_generator(self.generator_average.average, self.device) if compiled
            else self.generator_average.average)
        self.student_average = MovingAverage(self.student, student_ema) if student_ema else None
        for name, average in (("generator_ema", self.generator_average), ("student_ema", self.student_average)):
            if average is not None:
                self.models[name] = average.average
        self.replay = ReplayMemory(int(replay_size), self.device, seed) if replay_size else None
        # Replayed samples per imitation batch, once the memory holds any.
        self.replayed_per_batch = min(self.batch_size - 1, round(replay_share * self.batch_size)) if replay_size else 0

    def noise(self, count: int | None = None) -> torch.Tensor:
        return torch.randn(self.batch_size if count is None else count, self.nz, device=self.device)

    def augmented(self, images: torch.Tensor) -> torch.Tensor:
        """Generated samples as the student sees them: flipped and shifted with `augment` on."""
        if not self.augment:
            return images
        return flip_and_shift(images, self.augment_shift or max(1, images.shape[-1] // 8))

    def also_evaluated(self) -> dict[str, nn.Module]:
        return {"student_ema": self.student_average.average} if self.student_average is not None else {}

    def _batchnorm_statistics(self, weight: float, optional: bool, fallback: float) -> BatchNormStatistics | None:
        if weight <= 0:
            return None
        try:
            return BatchNormStatistics(self.teacher)
        except DfadError:
            if not optional:
                raise
            instead = (f"the total-variation image prior (weight {fallback:g}) takes its place" if fallback
                       else "DFAD runs without that prior")
            warnings.warn("bn_prior is off for this run: the teacher's BatchNorm running statistics are out of reach "
                          f"(no BatchNorm layers, or a TorchScript file); {instead}", stacklevel=2)
            return None

    def imitation_step(self) -> float:
        replayed = self.replayed_per_batch if self.replay is not None and self.replay.size else 0
        # With the momentum generator on, its average makes the samples the student learns from.
        generate = self.generate if self.generate_average is None else self.generate_average
        with torch.no_grad(), self.autocast():
            # (noise() with no count on the plain path: the paper's step, as subclasses and tests see it)
            images = self.augmented(generate(self.noise(self.batch_size - replayed) if replayed else self.noise()))
            teacher_out = self.teacher_forward(images)
        if self.replay is not None:
            if replayed:
                old_images, old_outputs = self.replay.sample(replayed, images.dtype)
            self.replay.add(images, teacher_out)
            if replayed:
                images, teacher_out = torch.cat([images, old_images]), torch.cat([teacher_out.float(), old_outputs])
        with self.autocast():
            student_out = self.student(images)
        # Losses in fp32 whatever the precision of the networks.
        loss = self.imitation_loss(student_out.float(), teacher_out.float(), task=self.task,
                                   temperature=self.temperature)
        return self.update("student", loss)

    def generation_step(self) -> float:
        # "train" (the authors' code): the student normalises the generator's batch with its own
        # statistics and its running statistics move; "eval": running statistics, left unchanged.
        self.student.train(self.generation_student_bn == "train")
        try:
            with self.autocast():
                generated = self.generate(self.noise())
                images = self.augmented(generated)
                with no_param_grads(self.student):
                    if self.bn_statistics is not None:
                        self.bn_statistics.start()
                    student_out, teacher_out = self.student(images), self.teacher(images)
        finally:
            self.student.train()
        adversarial = self.generator_loss(student_out.float(), teacher_out.float(), task=self.task)
        added = {}  # name: (weight, unweighted term)
        if self.class_balance:
            added["generator_class_balance"] = (self.class_balance, class_balance_loss(teacher_out.float()))
        if self.confidence:
            added["generator_confidence"] = (self.confidence, confidence_loss(teacher_out.float()))
        if self.total_variation:
            excess = (total_variation_loss(generated.float()) - self.total_variation_floor).clamp_min(0)
            added["generator_total_variation"] = (self.total_variation, excess)
        if self.bn_statistics is not None:
            added["generator_bn_prior"] = (self.bn_prior, self.bn_statistics.stop())
        total = adversarial
        for weight, term in added.values():
            total = total + weight * term
        self.update("generator", total)
        # Returns the adversarial loss alone (the paper's by default); each added term is logged (unweighted) beside it.
        self.added_generator_terms = {name: term.item() for name, (_, term) in added.items()}
        return adversarial.item()

    def step(self) -> dict[str, float]:
        self.teacher.eval()
        self.student.train()
        self.generator.train()
        student_losses = [self.imitation_step() for _ in range(self.imitation_steps)]
        generator_loss = self.generation_step()
        self.update_averages()
        return {"student_loss": fmean(student_losses), "generator_loss": generator_loss, **self.added_generator_terms}

    def update_averages(self) -> None:
        for average in (self.generator_average, self.student_average):
            if average is not None:
                average.update()

    def health(self) -> dict[str, float]:
        # The eager generator: a compiled one would recompile for this batch size.
        return measure_health(self.teacher, self.student, self.generator, self.health_noise,
                              memory=self.health_memory)

    def _option_state_holders(self) -> dict:
        """The options' parts with state of their own (saved with the run), by name; off ones left out."""
        holders = {"generator_average": self.generator_average, "student_average": self.student_average,
                   "replay": self.replay}
        return {name: part for name, part in holders.items() if part is not None}

    def extra_state(self) -> dict:
        return {"health_memory": self.health_memory.state_dict(),
                **{name: part.state_dict() for name, part in self._option_state_holders().items()}}

    def load_extra_state(self, state: dict) -> None:
        self.health_memory.load_state_dict(state.get("health_memory", {}))
        for name, part in self._option_state_holders().items():
            part.load_state_dict(state[name])

    def sample_images(self) -> torch.Tensor:
        # Train-mode BatchNorm, as during training, but without updating its running statistics.
        with torch.no_grad(), preserved_buffers(self.generator):
            self.generator.train()
            return self.generator(self.grid_noise)


@METHODS.register("random")
class RandomGenerator(DFAD):
    """The RANDOM baseline: DFAD's imitation steps on samples of a fixed, untrained generator.

    Only the student learns; the generator keeps its initial weights (its BatchNorm layers still
    normalise each batch, as in DFAD's imitation step)."""

    parts = ("student", "student_optimizer", "generator")

    def __init__(self, **kwargs):
        refuse_generator_options("random", kwargs)
        # Given a generator optimiser anyway (e.g. built by hand), it is left out: nothing steps it.
        kwargs["generator_optimizer"] = kwargs["generator_scheduler"] = None
        super().__init__(**kwargs)
        for p in self.generator.parameters():
            p.requires_grad_(False)

    def step(self) -> dict[str, float]:
        self.teacher.eval()
        self.student.train()
        self.generator.train()
        losses = [self.imitation_step() for _ in range(self.imitation_steps)]
        self.update_averages()
        return {"student_loss": fmean(losses)}
