"""Checkpoints are plain dicts of state dicts and numbers, loaded with weights_only=True.

A model entry is self-describing: {"arch": name, "args": {...}, "state_dict": ...}, so a
checkpoint can be rebuilt without the config that made it.
"""
from __future__ import annotations

import errno
import os
import pickle
import re
from pathlib import Path
import warnings
from typing import Any

import torch
from torch import nn

from ..errors import DfadError
from ..models import build_model

FORMAT = "dfad-checkpoint/1"


def model_entry(model: nn.Module) -> dict:
    """A self-describing entry for a model made by `dfad.models.build_model`."""
    spec = getattr(model, "dfad_spec", None)
    if spec is None:  # a user's own module (Python API): its weights, and its class name to say what it is
        return {"arch": None, "module": type(model).__qualname__, "args": {}, "state_dict": model.state_dict()}
    return {"arch": spec["arch"], "args": dict(spec["args"]), "state_dict": model.state_dict()}


def save_checkpoint(payload: dict, path: Path) -> None:
    """Write atomically (temporary file, fsync, rename): a crash or a full disk mid-write never
    damages the file already at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save({"format": FORMAT, **payload}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DfadError(f"no space left on the device while writing {path}; the checkpoints already "
                            f"in {path.parent} are intact: free some space and resume the run "
                            f"(same command, or --resume)") from exc
        raise DfadError(f"cannot write checkpoint {path}: {exc.strerror or exc}; check the folder's "
                        f"permissions and free space") from exc
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); harmless where directories cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


STATE_PATTERN = re.compile(r"^state-(\d+)\.pt$")


def state_path(folder: Path, iteration: int) -> Path:
    return folder / f"state-{iteration:08d}.pt"


def list_states(folder: Path) -> list[tuple[int, Path]]:
    """Resumable state checkpoints in `folder`, newest first."""
    found = []
    for path in folder.glob("state-*.pt"):
        match = STATE_PATTERN.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found, reverse=True)


def prune_states(folder: Path, keep: int) -> None:
    for _, path in list_states(folder)[keep:]:
        path.unlink(missing_ok=True)


def load_newest_state(folder: Path) -> tuple[Path, dict] | None:
    """The newest state checkpoint that loads; damaged ones are reported and skipped."""
    for _, path in list_states(folder):
        try:
            payload = load_checkpoint(path, kind="state")
        except DfadError as exc:
            warnings.warn(f"skipping unreadable state checkpoint: {exc}", stacklevel=2)
            continue
        return path, payload
    return None


class PickledCodeError(DfadError):
    """The file holds pickled code (a whole module, a custom class), which weights_only=True refuses."""

    def __init__(self, message: str, global_name: str):
        super().__init__(message)
        self.global_name = global_name


def load_weights_only(path: Path, what: str = "checkpoint") -> Any:
    """torch.load(path, weights_only=True) on the CPU, failures as one-line errors naming `what`
    (e.g. "checkpoint", "--teacher"): PickledCodeError for files that need code to load,
    DfadError for damaged or foreign files."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        needs_code = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if needs_code:
            raise PickledCodeError(f"{what} {path} needs arbitrary code to load ({needs_code.group(1)}) and was "
                                   f"refused (weights_only=True); re-save it as a state dict: "
                                   f"torch.save(model.state_dict(), PATH)", needs_code.group(1)) from exc
        raise DfadError(f"{what} {path} is corrupt or not a PyTorch file (unreadable pickle); "
                        f"re-create it or point to another file") from exc
    except Exception as exc:  # truncated or not a torch file at all
        raise DfadError(f"{what} {path} is corrupt or not a PyTorch file ({type(exc).__name__}); "
                        f"re-create it or point to another file") from exc


def is_dfad_checkpoint(payload: Any) -> bool:
    return isinstance(payload, dict) and payload.get("format") == FORMAT


def load_checkpoint(path: str | Path, kind: str = "models") -> dict:
    """A dfad checkpoint, loaded with weights_only=True. `kind` is the key it must hold:
    "models" (teacher.pt, best.pt, last.pt) or "state" (resumable state-*.pt)."""
    path = Path(path)
    if not path.is_file():
        raise DfadError(f"checkpoint {path} does not exist; check the path (train a teacher with "
                        f"`dfad train-teacher` to create one)")
    return checked_checkpoint(load_weights_only(path), path, kind)


def checked_checkpoint(payload: Any, path: str | Path, kind: str = "models") -> dict:
    """`payload` (already loaded from `path`) if it is a dfad checkpoint holding `kind`."""
    if not is_dfad_checkpoint(payload) or kind not in payload:
        raise DfadError(f"{path} is not a dfad checkpoint (no '{FORMAT}' {kind} dict); give a file written "
                        f"by `dfad train-teacher` or `dfad distill`")
    return payload


def pick_model_entry(payload: dict, role: str, path: str | Path) -> dict:
    """The entry named `role`, or the only entry there is."""
    models = payload["models"]
    if role in models:
        return models[role]
    if len(models) == 1:
        return next(iter(models.values()))
    raise DfadError(f"checkpoint {path} holds models {sorted(models)}, not '{role}'; "
                    f"choose one with --model")


def _describe_mismatch(model: nn.Module, state_dict: dict) -> str:
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [f"{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}"
              for k, v in own.items() if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)):
        if items:
            more = f" (+{len(items) - 3} more)" if len(items) > 3 else ""
            parts.append(f"{label}: {', '.join(items[:3])}{more}")
    return "; ".join(parts)


def build_model_from_entry(entry: dict, path: str | Path, **overrides: Any) -> nn.Module:
    if entry.get("arch") is None:
        raise DfadError(f"checkpoint {path} holds the weights of your own model class '{entry.get('module')}', "
                        f"which dfad cannot rebuild; create the model yourself and load "
                        f"torch.load(PATH, weights_only=True)['models'][ROLE]['state_dict'] into it")
    args = {**entry.get("args", {}), **overrides}
    model = build_model(entry["arch"], **args)
    problems = _describe_mismatch(model, entry["state_dict"])
    if problems:
        raise DfadError(f"checkpoint {path} does not fit architecture '{entry['arch']}' {args}: {problems}")
    model.load_state_dict(entry["state_dict"])
    return model
