"""Models from the files people have: dfad checkpoints, bare state dicts (with an architecture
name), exported programs (`.pt2`), TorchScript, and - only when trusted - pickled modules."""
from __future__ import annotations

import functools
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from .engine.checkpoint import (PickledCodeError, build_model_from_entry, checked_checkpoint, is_dfad_checkpoint,
                                load_weights_only, pick_model_entry)
from .errors import DfadError

FORMS = ("a dfad checkpoint", "a state dict with --teacher-arch NAME", "an exported program (.pt2)",
         "a TorchScript file", "a pickled module with --trust-checkpoint")


class FrozenGraph(nn.Module):
    """An exported program's module. It cannot switch between train and eval mode (its mode was
    fixed at export), so train()/eval() only record the flag instead of recursing into it."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.graph = module

    def train(self, mode: bool = True) -> "FrozenGraph":
        self.training = mode
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.graph(x)

    def expose_batchnorm_inputs(self) -> list["BatchNormInput"]:
        """Put an identity module before each inference-mode BatchNorm op of the graph, holding
        that op's running statistics, so forward hooks can read what the op normalises (the
        BatchNorm prior). Idempotent: a second call returns the same modules."""
        found = [m for m in self.graph.modules() if isinstance(m, BatchNormInput)]
        if found:
            return found
        graph = self.graph.graph
        for node in list(graph.nodes):
            if node.op != "call_function" or node.target != torch.ops.aten.batch_norm.default:
                continue
            source, _, _, mean_node, var_node, training = node.args[:6]
            if training or getattr(mean_node, "op", None) != "get_attr" or getattr(var_node, "op", None) != "get_attr":
                continue
            observer = BatchNormInput(_attribute(self.graph, mean_node.target), _attribute(self.graph, var_node.target))
            name = f"dfad_batchnorm_input_{len(found)}"
            self.graph.add_submodule(name, observer)
            with graph.inserting_before(node):
                observed = graph.call_module(name, (source,))
            node.replace_input_with(source, observed)
            found.append(observer)
        self.graph.recompile()
        return found


class BatchNormInput(nn.Module):
    """Identity before a BatchNorm op inside an exported graph; carries the op's running
    statistics as `running_mean` / `running_var`, like an nn.BatchNorm layer."""

    def __init__(self, running_mean: torch.Tensor, running_var: torch.Tensor):
        super().__init__()
        self.running_mean, self.running_var = running_mean, running_var

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _attribute(module: nn.Module, dotted: str) -> torch.Tensor:
    return functools.reduce(getattr, dotted.split("."), module)


def _zip_names(path: Path) -> list[str]:
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return []


def detect_format(path: Path) -> str:
    """'export', 'torchscript' or 'torch' (anything torch.load may read)."""
    names = _zip_names(path)
    if path.suffix == ".pt2" or any(n.endswith(("serialized_exported_program.json", "archive_format"))
                                    or ("/models/" in n and n.endswith(".json")) for n in names):
        return "export"
    if any(n.endswith("constants.pkl") for n in names) and any("/code/" in n for n in names):
        return "torchscript"
    return "torch"


def _state_dict_in(payload) -> Optional[dict]:
    """A bare state dict, or one under the usual keys of training scripts' checkpoints."""
    def is_state_dict(obj) -> bool:
        return isinstance(obj, Mapping) and bool(obj) and all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())

    if is_state_dict(payload):
        return dict(payload)
    if isinstance(payload, Mapping):
        for key in ("state_dict", "model", "model_state_dict", "teacher"):
            if is_state_dict(payload.get(key)):
                return dict(payload[key])
    return None


def load_model_file(path: str | Path, *, role: str = "teacher", arch: Optional[str] = None,
                    arch_args: Optional[dict] = None, num_classes: Optional[int] = None, in_channels: int = 3, trust: bool = False,
                    flag: str = "--teacher") -> nn.Module:
    """The model in `path`, on the CPU. `arch` (a registry name or `torchvision:NAME`) and
    `num_classes` (and any further `arch_args`) are needed only for a bare state dict; `trust` allows unpickling a whole module
    (which runs code from the file)."""
    path = Path(path)
    if not path.is_file():
        raise DfadError(f"{flag} {path} does not exist; give {', '.join(FORMS[:-1])} or {FORMS[-1]}")
    kind = detect_format(path)
    if kind == "export":
        try:
            program = torch.export.load(str(path))
        except Exception as exc:
            raise DfadError(f"{flag} {path} is not a readable exported program ({type(exc).__name__}: {exc}); "
                            f"write it with torch.export.save(torch.export.export(model, args), PATH)") from exc
        model = FrozenGraph(program.module())
        model.dfad_source = f"exported program {path.name}"
        return model
    if kind == "torchscript":
        try:
            model = torch.jit.load(str(path), map_location="cpu")
        except Exception as exc:
            raise DfadError(f"{flag} {path} is not a readable TorchScript file ({type(exc).__name__}); "
                            f"write it with torch.jit.save(torch.jit.script(model), PATH)") from exc
        model.dfad_source = f"TorchScript {path.name}"
        return model
    try:
        payload = load_weights_only(path, flag)
    except PickledCodeError as exc:
        if not trust:
            raise DfadError(f"{flag} {path} holds pickled code ({exc.global_name}); loading it runs that code. "
                            f"Pass --trust-checkpoint if you trust its source, or save a state dict / "
                            f"exported program instead") from exc
        return _load_trusted(path, flag)
    if is_dfad_checkpoint(payload):
        return build_model_from_entry(pick_model_entry(checked_checkpoint(payload, path), role, path), path)
    state_dict = _state_dict_in(payload)
    if state_dict is None:
        raise DfadError(f"{flag} {path} holds neither a dfad checkpoint nor a state dict; give "
                        f"{', '.join(FORMS[:-1])} or {FORMS[-1]}")
    if arch is None:
        raise DfadError(f"{flag} {path} is a bare state dict: name its architecture with {flag}-arch NAME "
                        f"(a dfad model or torchvision:NAME, e.g. torchvision:resnet18)")
    if num_classes is None:
        num_classes = _infer_num_classes(state_dict)
        if num_classes is None:
            raise DfadError(f"cannot tell the class count of {path}; pass --num-classes N")
    return build_model_from_entry({"arch": arch, "args": {**(arch_args or {}), "num_classes": num_classes,
                                                               "in_channels": in_channels},
                                   "state_dict": state_dict}, path)


def load_teacher(cfg, info, device, trust_checkpoint: bool = False) -> nn.Module:
    """The teacher in `cfg.teacher.checkpoint`, in any form read above (a bare state dict is built
    as `cfg.teacher.model`). `info`: the data's facts (DatasetInfo), or None without a dataset."""
    path = cfg.teacher.checkpoint
    if not path:
        raise DfadError("no teacher given; pass --teacher PATH (or teacher.checkpoint=PATH); "
                        "train one with `dfad train-teacher --config CONFIG --out DIR`")
    spec = cfg.teacher.model
    args = {k: v for k, v in spec.args.items() if k not in ("num_classes", "in_channels")}
    return load_model_file(path, role="teacher", arch=spec.arch, arch_args=args,
                           num_classes=info.num_classes if info else cfg.data.num_classes,
                           in_channels=info.channels if info else cfg.data.channels,
                           trust=trust_checkpoint).to(device)


def _infer_num_classes(state_dict: dict) -> Optional[int]:
    """The output count of the last layer's bias (classifiers' usual final layer), if any."""
    biases = [v for k, v in state_dict.items() if k.endswith("bias") and v.dim() == 1]
    return int(biases[-1].shape[0]) if biases else None


def _load_trusted(path: Path, flag: str) -> nn.Module:
    try:
        model = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # its classes must be importable here
        raise DfadError(f"{flag} {path}: the pickled module could not be rebuilt ({type(exc).__name__}: {exc}); "
                        f"make its code importable (PYTHONPATH) or save a state dict instead") from exc
    if not isinstance(model, nn.Module):
        raise DfadError(f"{flag} {path} holds a {type(model).__name__}, not an nn.Module")
    model.dfad_source = f"pickled module {path.name}"
    return model
