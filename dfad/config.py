"""Configs are data: YAML files and `key=value` overrides, validated into dataclasses.

Every field has a default, so a YAML file only states what differs. Unknown keys and
values of the wrong type are rejected with the dotted path and, where possible, the
nearest valid key.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import yaml

from .errors import DfadError
from .registry import check_config_names, check_config_options, suggest

SHIPPED_CONFIGS = Path(__file__).parent / "configs"
# What a run with no dataset and no config starts from (`dfad distill --input-shape`, `dfad.distill`).
NO_DATA_PRESET = "own_model"
AUTO_LR = "auto"  # distill.student_optimizer.lr chosen from the student (dfad.engine.optim.auto_student_lr)


def check_mean_and_std(mean, std, mean_name: str, std_name: str, prefix: str = "") -> None:
    """Input statistics come in pairs: both given, or neither (the one rule, for config, CLI and API)."""
    if (mean is None) != (std is None):
        raise DfadError(f"{prefix}give both {mean_name} and {std_name}, or neither")


@dataclass
class ModelSpec:
    """A registry name plus keyword arguments (num_classes / in_channels are filled in from the data).

    A model given in a YAML replaces the default whole: another arch's arguments make no sense.
    """

    replace_whole: typing.ClassVar[bool] = True

    arch: str = "convnet"
    args: dict = field(default_factory=dict)


@dataclass
class DataConfig:
    # A registered dataset, or "none": no data at all (your own teacher, no test split). Then
    # channels and image_size give the teacher's input, num_classes its outputs (None: read from
    # a dry run of the teacher), mean/std the statistics its inputs are normalised with.
    name: str = "digits"
    channels: Optional[int] = None  # data.name=none only
    num_classes: Optional[int] = None  # data.name=none only
    root: Optional[str] = None  # None: --data-root, then $DFAD_DATA_ROOT, then ~/.cache/dfad/data
    download: bool = False
    image_size: Optional[int] = None  # None: the dataset's own size
    # Resize whole frames so that their shorter side is this many pixels before cropping / testing
    # (segmentation datasets; the authors use 256 for CamVid and NYUv2). None: as stored.
    shorter_side: Optional[int] = None
    mean: Optional[list[float]] = None  # None: the dataset's standard statistics
    std: Optional[list[float]] = None
    eval_batch_size: int = 1000


@dataclass
class OptimizerConfig:
    name: str = "sgd"  # sgd | adam
    # A number, or (distill.student_optimizer only) "auto": 0.1 for a student with BatchNorm, 0.01
    # for one without (the authors' rates for their BatchNorm students and for LeNet-5-half).
    lr: Union[float, str] = 0.01
    momentum: float = 0.9  # sgd only
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # adam only


@dataclass
class ScheduleConfig:
    name: str = "none"  # none | step | multistep | cosine; stepped once per iteration
    step_size: int = 0  # step: decay every step_size iterations
    milestones: list[int] = field(default_factory=list)  # multistep: iterations at which to decay
    gamma: float = 0.1


@dataclass
class TeacherConfig:
    model: ModelSpec = field(default_factory=lambda: ModelSpec("convnet", {"width": 32}))
    checkpoint: Optional[str] = None  # where `distill` reads the trained teacher from
    iterations: int = 1000  # supervised training iterations (batches)
    batch_size: int = 128
    optimizer: OptimizerConfig = field(default_factory=lambda: OptimizerConfig("adam", lr=1e-3))
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    val_every: int = 200
    # none | crop_flip (random 4-pixel shifts + horizontal flips, CIFAR) | seg_crop_flip (random
    # data.image_size crops + flips of images and label maps, segmentation)
    augment: str = "none"
    loss: str = "cross_entropy"  # cross_entropy | focal (gamma 2, the authors' segmentation teachers)
    channels_last: bool = True  # the model in NHWC layout: faster convolutions, the same values


@dataclass
class DistillConfig:
    method: str = "dfad"  # dfad | random | kd | dafl
    # Method-specific keyword arguments, e.g. kd: {data: fashion_mnist}; dafl: {onehot: 1, activation: 0.1, entropy: 5}
    method_args: dict = field(default_factory=dict)
    student: ModelSpec = field(default_factory=lambda: ModelSpec("convnet", {"width": 8}))
    generator: ModelSpec = field(default_factory=lambda: ModelSpec("generator_a", {"ngf": 64}))
    nz: int = 100
    iterations: int = 1000
    batch_size: int = 256
    imitation_steps: int = 5  # student updates per generator update (k in the paper)
    # The student's BatchNorm mode in the generation step. "train" (the authors' code): batch
    # statistics, and the running statistics also move on the generator's batch. "eval": the
    # student normalises with its running statistics, which the generator's batch leaves alone.
    generation_student_bn: str = "train"
    student_optimizer: OptimizerConfig = field(
        default_factory=lambda: OptimizerConfig("sgd", lr=0.1, momentum=0.9, weight_decay=5e-4))
    generator_optimizer: OptimizerConfig = field(default_factory=lambda: OptimizerConfig("adam", lr=1e-3))
    student_schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    generator_schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    val_every: int = 50
    log_every: int = 10
    sample_grid_size: int = 64  # generated images saved per validation
    time_limit_minutes: Optional[float] = None  # stop early (validated, checkpointed) after this much wall time
    stop_at_metric: Optional[float] = None  # stop at the first validation that reaches this metric
    # Teacher, student and generator in channels_last (NHWC) layout: the same math up to float
    # rounding; halves the generator's convolution time on CPU, and is what makes bf16 convolutions
    # fast (benchmarks/README.md).
    channels_last: bool = True
    # torch.compile the generator (per-tap upsample+conv fused by Inductor): ~1.5x faster generator
    # steps on CPU after a one-off compilation of tens of seconds, so worth it for long runs only.
    # Also compiles the frozen teacher's imitation forwards. Under bf16 on CPU the generator stays
    # eager (sub-pixel), which bf16 speeds up and the compiled form does not (engine/compile.py).
    compile: bool = False
    # Under torchrun: BatchNorm layers of the student and generator normalise over the global batch
    # (nn.SyncBatchNorm; CUDA only). Off: each rank normalises its local batch (the running
    # statistics are still averaged over ranks after every iteration, so they stay identical).
    sync_batchnorm: bool = False


@dataclass
class CheckpointingConfig:
    every: int = 100  # iterations between resumable state checkpoints (also written at the end and on SIGINT/SIGTERM)
    keep: int = 2  # newest state checkpoints kept


@dataclass
class Config:
    task: str = "classification"  # classification | segmentation
    seed: int = 0
    device: str = "cpu"
    threads: Optional[int] = None  # torch.set_num_threads; None keeps torch's default
    # Keep freed memory for reuse (glibc): avoids re-faulting large activations every step.
    memory_reuse: bool = True
    # fp32 | bf16 (autocast) | fp16 (autocast + gradient scaling; CUDA only) | auto (bf16 where the
    # CPU or GPU computes it natively, else fp32)
    precision: str = "fp32"
    tensorboard: bool = False  # also log the metrics to TensorBoard (RUN/tensorboard)
    data: DataConfig = field(default_factory=DataConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    checkpointing: CheckpointingConfig = field(default_factory=CheckpointingConfig)

    def validate(self) -> "Config":
        """Every value checked (names by their registries); returns self."""
        self._check_data_free()
        self._check_names()
        check_config_options({"distill.method": (self.distill.method, "distill.method_args", self.distill.method_args)})
        self._check_numbers()
        self._check_optimisers()
        if self.distill.generation_student_bn not in ("train", "eval"):
            raise DfadError(f"config: distill.generation_student_bn must be 'train' or 'eval', "
                            f"got '{self.distill.generation_student_bn}'")
        if self.device != "cpu" and not self.device.startswith("cuda"):
            raise DfadError(f"config: device must be 'cpu' or 'cuda[:N]', got '{self.device}'")
        return self

    def _check_data_free(self) -> None:
        if self.data.name == "none":
            if self.data.channels is None or self.data.image_size is None:
                raise DfadError("config: data.name=none (no dataset) needs the teacher's input shape: pass "
                                "--input-shape C,H,W (or data.channels and data.image_size)")
            if self.data.channels <= 0 or (self.data.num_classes is not None and self.data.num_classes <= 1):
                raise DfadError(f"config: data.channels must be positive and data.num_classes at least 2, got "
                                f"{self.data.channels} and {self.data.num_classes}")

    def _check_names(self) -> None:
        # Every name against the registry that owns it (registry.check_config_names).
        check_config_names({
            "task": self.task,
            **({"data.name": self.data.name} if self.data.name != "none" else {}),
            "distill.method": self.distill.method, "teacher.loss": self.teacher.loss,
            "teacher.model.arch": self.teacher.model.arch, "distill.student.arch": self.distill.student.arch,
            "distill.generator.arch": self.distill.generator.arch, "teacher.augment": self.teacher.augment,
            "precision": self.precision,
            "teacher.optimizer.name": self.teacher.optimizer.name,
            "distill.student_optimizer.name": self.distill.student_optimizer.name,
            "distill.generator_optimizer.name": self.distill.generator_optimizer.name,
            "teacher.schedule.name": self.teacher.schedule.name,
            "distill.student_schedule.name": self.distill.student_schedule.name,
            "distill.generator_schedule.name": self.distill.generator_schedule.name,
        })

    def _check_numbers(self) -> None:
        positive = {
            "seed": self.seed + 1,  # seed may be 0
            "data.eval_batch_size": self.data.eval_batch_size,
            "teacher.iterations": self.teacher.iterations,
            "teacher.batch_size": self.teacher.batch_size,
            "teacher.val_every": self.teacher.val_every,
            "distill.nz": self.distill.nz,
            "distill.iterations": self.distill.iterations,
            "distill.batch_size": self.distill.batch_size,
            "distill.imitation_steps": self.distill.imitation_steps,
            "distill.val_every": self.distill.val_every,
            "distill.log_every": self.distill.log_every,
            "distill.sample_grid_size": self.distill.sample_grid_size,
            "checkpointing.every": self.checkpointing.every,
            "checkpointing.keep": self.checkpointing.keep,
        }
        for key, value in positive.items():
            if value <= 0:
                raise DfadError(f"config: {key} must be positive, got {value if key != 'seed' else self.seed}")
        if self.distill.time_limit_minutes is not None and self.distill.time_limit_minutes <= 0:
            raise DfadError(f"config: distill.time_limit_minutes must be positive, got {self.distill.time_limit_minutes}")
        if self.data.shorter_side is not None and self.data.shorter_side <= 0:
            raise DfadError(f"config: data.shorter_side must be positive, got {self.data.shorter_side}")
        if self.data.image_size is not None and self.data.image_size <= 0:
            raise DfadError(f"config: data.image_size must be positive, got {self.data.image_size}")
        check_mean_and_std(self.data.mean, self.data.std, "data.mean", "data.std", "config: ")
        if self.data.std is not None and any(s <= 0 for s in self.data.std):
            raise DfadError(f"config: data.std must be positive, got {self.data.std}")

    def _check_optimisers(self) -> None:
        for key, opt in (("teacher.optimizer", self.teacher.optimizer),
                         ("distill.student_optimizer", self.distill.student_optimizer),
                         ("distill.generator_optimizer", self.distill.generator_optimizer)):
            if isinstance(opt.lr, str):
                if opt.lr != AUTO_LR or key != "distill.student_optimizer":
                    where = "a number" if key != "distill.student_optimizer" else f"a number or '{AUTO_LR}'"
                    raise DfadError(f"config: {key}.lr must be {where}, got '{opt.lr}'")
            elif opt.lr <= 0:
                raise DfadError(f"config: {key}.lr must be positive, got {opt.lr}")
        for key, sched in (("teacher.schedule", self.teacher.schedule),
                           ("distill.student_schedule", self.distill.student_schedule),
                           ("distill.generator_schedule", self.distill.generator_schedule)):
            if sched.name == "step" and sched.step_size <= 0:
                raise DfadError(f"config: {key}.step_size must be positive for a step schedule")


# ---------------------------------------------------------------------------------------------
# dict <-> dataclass


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _coerce(value: Any, tp: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        inner = [t for t in options if t is not type(None)]
        for option in inner[:-1]:  # the first type the value fits
            try:
                return _coerce(value, option, path)
            except DfadError:
                pass
        return _coerce(value, inner[-1], path)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise DfadError(f"config: {path} must be a mapping, got {value!r}")
        return _from_dict(tp, value, path)
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise DfadError(f"config: {path} must be a list, got {value!r}")
        return [_coerce(v, item_tp, f"{path}[{i}]") for i, v in enumerate(value)]
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise DfadError(f"config: {path} must be a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise DfadError(f"config: {path} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise DfadError(f"config: {path} must be an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise DfadError(f"config: {path} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise DfadError(f"config: {path} must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config type {_type_name(tp)} at {path}")


def _from_dict(cls: type, data: dict, path: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in names:
            where = f"{path}.{key}" if path else key
            raise DfadError(f"config: unknown key '{where}'{suggest(str(key), names)}; "
                            f"valid keys here: {', '.join(names)}")
    base = cls()
    kwargs = {}
    for name in names:
        where = f"{path}.{name}" if path else name
        if name in data:
            current = getattr(base, name)
            value = data[name]
            if dataclasses.is_dataclass(current) and isinstance(value, dict):
                # Merge onto the field's own defaults so a YAML only states what differs; a model
                # spec naming an arch replaces the default whole, one without (e.g. only
                # `args.ngf`) adjusts the default model's arguments.
                merged = dataclasses.asdict(current)
                if getattr(current, "replace_whole", False):
                    if not _names_a_model(value):
                        merged["args"] = {**merged["args"], **value.get("args", {})}
                        value = {**value, "args": merged["args"]}
                    else:
                        merged = {}
                merged.update(value)
                value = merged
            kwargs[name] = _coerce(value, hints[name], where)
        else:
            kwargs[name] = getattr(base, name)
    return cls(**kwargs)


def config_to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)


def _set_dotted(data: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[keys[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """'distill.batch_size=64' -> ('distill.batch_size', 64); the value is read as YAML."""
    if "=" not in text:
        raise DfadError(f"override '{text}' is not of the form key=value (e.g. distill.iterations=200)")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else None
    except yaml.YAMLError as exc:
        raise DfadError(f"override '{text}': cannot read the value as YAML ({exc.problem})") from exc
    return key.strip(), value


def resolve_config_path(name_or_path: str) -> Path:
    """A file path, or the name of a shipped config ('digits', 'mnist')."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = SHIPPED_CONFIGS / f"{name_or_path}.yaml"
    if shipped.is_file():
        return shipped
    available = sorted(p.stem for p in SHIPPED_CONFIGS.glob("*.yaml"))
    raise DfadError(f"config file '{name_or_path}' not found; give a YAML path or a shipped config name "
                    f"({', '.join(available)}){suggest(name_or_path, available)}")


def _read_config_file(name_or_path: str, seen: tuple[str, ...] = ()) -> dict:
    """A config file's mapping, with `base: NAME` resolved: the file states only what differs
    from its base (a shipped name or a path relative to the file)."""
    path = resolve_config_path(name_or_path)
    if str(path.resolve()) in seen:
        raise DfadError(f"config file {path}: 'base' chain loops back to itself")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise DfadError(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise DfadError(f"config file {path} must hold a mapping at the top level")
    base = data.pop("base", None)
    if base is None:
        return data
    relative = path.parent / str(base)
    base_data = _read_config_file(str(relative) if relative.is_file() else str(base),
                                  (*seen, str(path.resolve())))
    return _merge(base_data, data)


def _names_a_model(value: dict) -> bool:
    """A model spec naming an arch replaces the one it overrides whole (in a base file's YAML and
    over the defaults alike): another arch's arguments make no sense. One without (e.g. only
    `args.ngf`) adjusts the model it overrides."""
    return "arch" in value


def _merge(base: dict, override: dict) -> dict:
    """Nested mappings merge key by key, except model specs (mappings with an 'arch'): a model
    given in a file replaces its base's whole, since another arch's arguments make no sense."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and not _names_a_model(value):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_config(name_or_path: Optional[str] = None, overrides: tuple[str, ...] | list[str] = ()) -> Config:
    data: dict = _read_config_file(name_or_path) if name_or_path else {}
    for text in overrides:
        key, value = parse_override(text)
        _set_dotted(data, key, value)
    return _from_dict(Config, data).validate()


def build_config(base: Optional[str] = None, values: Optional[dict[str, Any]] = None) -> Config:
    """A validated config from a base (shipped name, path or None for the defaults) and Python
    values by dotted key, e.g. {"distill.iterations": 200} (the Python API's counterpart of overrides)."""
    data: dict = _read_config_file(base) if base else {}
    for key, value in (values or {}).items():
        _set_dotted(data, key, value)
    return _from_dict(Config, data).validate()


def save_config(cfg: Config, path: Path) -> None:
    path.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
