"""Data-Free Adversarial Distillation (Fang et al., 2019): the student imitates the teacher on
generated samples while the generator seeks samples on which they disagree most."""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from statistics import fmean

import torch
from torch import nn

from ..engine.compile import compile_generator
from ..engine.state import preserved_buffers
from ..errors import DfadError
from ..health import SampleMemory, health_noise, measure_health
from .base import METHODS, Method, freeze
from .imitation import IMITATION_LOSSES
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


# DFAD's options on the generator's loss (see DFAD's docstring); 0 / False = off.
GENERATOR_OPTIONS = ("class_balance", "confidence", "bn_prior", "bn_prior_optional", "total_variation",
                     "total_variation_floor", "fallback_total_variation")


def refuse_generator_options(method: str, arguments: dict) -> None:
    """Methods built on DFAD's plumbing whose generator objective is not DFAD's ignore its options."""
    for name in GENERATOR_OPTIONS:
        if arguments.get(name):
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
      (methods/imitation.py); the generator's loss stays the task's L1 bound.
    """

    parts = ("student", "student_optimizer", "generator", "generator_optimizer")

    @classmethod
    def from_config(cls, parts) -> "DFAD":
        dc = parts.cfg.distill
        built = {"student": parts.student(), "generator": parts.generator()}
        for model in ("student", "generator"):
            if f"{model}_optimizer" in cls.parts:
                built[f"{model}_optimizer"], built[f"{model}_scheduler"] = parts.optimizer(model)
        forward = compile_generator(built["generator"], parts.device) if dc.compile else None
        return cls(**built, nz=dc.nz, batch_size=parts.batch_size_per_process, grid_seed=parts.cfg.seed,
                   generator_forward=forward, generation_student_bn=dc.generation_student_bn, **parts.common(),
                   **dc.method_args)

    def __init__(self, *, teacher: nn.Module, student: nn.Module, generator: nn.Module, task,
                 student_optimizer: torch.optim.Optimizer, student_scheduler, batch_size: int, nz: int,
                 generator_optimizer: torch.optim.Optimizer | None = None, generator_scheduler=None,
                 imitation_steps: int = 5, device: torch.device | str = "cpu", grid_size: int = 64,
                 grid_seed: int = 0, generator_forward=None, precision: str = "fp32",
                 generation_student_bn: str = "train", class_balance: float = 0.0, confidence: float = 0.0,
                 bn_prior: float = 0.0,
                 bn_prior_optional: bool = False, total_variation: float = 0.0,
                 total_variation_floor: float = 0.0, fallback_total_variation: float = 0.0,
                 imitation_loss: str = "l1", temperature: float = 1.0):
        if generation_student_bn not in ("train", "eval"):
            raise ValueError(f"generation_student_bn must be 'train' or 'eval', got {generation_student_bn!r}")
        for name, weight in (("class_balance", class_balance), ("confidence", confidence), ("bn_prior", bn_prior),
                             ("total_variation", total_variation), ("total_variation_floor", total_variation_floor),
                             ("fallback_total_variation", fallback_total_variation)):
            if not isinstance(weight, (int, float)) or weight < 0:
                raise DfadError(f"distill.method_args.{name} must be a number >= 0 (0 = off), got {weight!r}")
        if not isinstance(temperature, (int, float)) or temperature <= 0:
            raise DfadError(f"distill.method_args.temperature must be a number > 0, got {temperature!r}")
        self.imitation_loss = IMITATION_LOSSES.get(imitation_loss)
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
        # Fixed noise for sample grids, from its own RNG so that drawing it never shifts training.
        self.grid_noise = torch.randn(grid_size, nz, generator=torch.Generator().manual_seed(grid_seed)).to(self.device)
        self.health_noise = health_noise(nz, grid_seed).to(self.device)
        self.health_memory = SampleMemory()
        self.added_generator_terms: dict[str, float] = {}

    def noise(self) -> torch.Tensor:
        return torch.randn(self.batch_size, self.nz, device=self.device)

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
        with torch.no_grad(), self.autocast():
            images = self.generate(self.noise())
            teacher_out = self.teacher(images)
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
                images = self.generate(self.noise())
                with no_param_grads(self.student):
                    if self.bn_statistics is not None:
                        self.bn_statistics.start()
                    student_out, teacher_out = self.student(images), self.teacher(images)
        finally:
            self.student.train()
        adversarial = self.task.generator_loss(student_out.float(), teacher_out.float())
        added = {}  # name: (weight, unweighted term)
        if self.class_balance:
            added["generator_class_balance"] = (self.class_balance, class_balance_loss(teacher_out.float()))
        if self.confidence:
            added["generator_confidence"] = (self.confidence, confidence_loss(teacher_out.float()))
        if self.total_variation:
            excess = (total_variation_loss(images.float()) - self.total_variation_floor).clamp_min(0)
            added["generator_total_variation"] = (self.total_variation, excess)
        if self.bn_statistics is not None:
            added["generator_bn_prior"] = (self.bn_prior, self.bn_statistics.stop())
        total = adversarial
        for weight, term in added.values():
            total = total + weight * term
        self.update("generator", total)
        # Returns the paper's adversarial loss; each added term is logged (unweighted) beside it.
        self.added_generator_terms = {name: term.item() for name, (_, term) in added.items()}
        return adversarial.item()

    def step(self) -> dict[str, float]:
        self.teacher.eval()
        self.student.train()
        self.generator.train()
        student_losses = [self.imitation_step() for _ in range(self.imitation_steps)]
        generator_loss = self.generation_step()
        return {"student_loss": fmean(student_losses), "generator_loss": generator_loss, **self.added_generator_terms}

    def health(self) -> dict[str, float]:
        # The eager generator: a compiled one would recompile for this batch size.
        return measure_health(self.teacher, self.student, self.generator, self.health_noise,
                              memory=self.health_memory)

    def extra_state(self) -> dict:
        return {"health_memory": self.health_memory.state_dict()}

    def load_extra_state(self, state: dict) -> None:
        self.health_memory.load_state_dict(state.get("health_memory", {}))

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
        return {"student_loss": fmean(self.imitation_step() for _ in range(self.imitation_steps))}
