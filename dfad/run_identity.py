"""Run identity: which config keys make two runs the same run, and what to do with a folder that
already holds one (continue it, refuse it, or start over).

A folder holding a run with the same config continues it (re-running a command after a crash or
pre-emption resumes); a different config is refused unless --resume or --force.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Optional

from .config import Config, config_to_dict, load_config
from .engine.distributed import SINGLE, Distributed
from .engine.optim import SCHEDULES, schedule_fields
from .engine.run_dir import RunDir, holds_run
from .errors import DfadError
from .methods import METHODS


# Where the data and teacher are read from, and how long this session may run, do not make a run
# "different": the same run may be resumed from another machine or with a new time limit. The device
# changes the same function's float rounding, as the thread count does (a CPU-trained teacher is
# reused, or a CPU run resumed, on a lent GPU); precision changes the function and stays identity.
_NOT_IDENTITY = {"data.root", "data.download", "distill.time_limit_minutes", "distill.stop_at_metric", "threads",
                 "device", "tensorboard", "teacher.channels_last", "distill.channels_last"}  # layout: same values


def _flatten(data: dict, prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict) and not ("arch" in value and "args" in value):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


# What a run of each kind does not depend on: a teacher run, how it will later be distilled; a
# distillation run, how its teacher was trained (only the teacher's file and architecture matter).
_NOT_IDENTITY_OF = {"teacher": lambda key: key.startswith("distill."),
                    "distill": lambda key: key.startswith("teacher.") and key not in ("teacher.model",
                                                                                     "teacher.checkpoint")}


def _drop_unread_schedule_keys(flat: dict[str, Any]) -> dict[str, Any]:
    unread = set()
    for key, kind in flat.items():
        if key.endswith("schedule.name") and kind in SCHEDULES:
            prefix = key[:-len("name")]
            unread |= {k for k in flat if k.startswith(prefix) and k != key
                       and k[len(prefix):] not in schedule_fields(kind)}
    return {k: v for k, v in flat.items() if k not in unread}


def config_differences(folder: str | Path, cfg: Config, kind: str) -> list[str]:
    """'key X here vs Y there' for each identity key on which `cfg` and the run in `folder` differ.

    Not identity: where data and teacher are read from and session limits (_NOT_IDENTITY), the
    other kind's keys (_NOT_IDENTITY_OF), keys the distillation method never reads, and the
    teacher's path when both paths hold the same file (a copied or moved teacher)."""
    saved = _drop_unread_schedule_keys(_flatten(config_to_dict(load_config(str(Path(folder) / "config.yaml")))))
    wanted = _drop_unread_schedule_keys(_flatten(config_to_dict(cfg)))
    ignored = _NOT_IDENTITY_OF[kind]
    unused: tuple[str, ...] = ()
    if kind == "distill" and cfg.distill.method in METHODS:
        unused = getattr(METHODS.get(cfg.distill.method), "unused_config_keys", ())

    def same(key: str) -> bool:
        if saved.get(key) == wanted.get(key):
            return True
        return key == "teacher.checkpoint" and _same_file_contents(saved.get(key), wanted.get(key))

    return [f"{k} {wanted.get(k)!r} here vs {saved.get(k)!r} there" for k in sorted(set(saved) | set(wanted))
            if k not in _NOT_IDENTITY and not ignored(k) and not _under(k, unused) and not same(k)]


def _under(key: str, prefixes: tuple[str, ...]) -> bool:
    """`key` is one of `prefixes` or lies beneath one (distill.generator.args, not distill.generator_optimizer)."""
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def _same_file_contents(a: Optional[str], b: Optional[str]) -> bool:
    if not a or not b or not Path(a).is_file() or not Path(b).is_file():
        return False
    if Path(a).stat().st_size != Path(b).stat().st_size:
        return False
    return _sha256(a) == _sha256(b)


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_differences(differing: list[str]) -> str:
    more = f" (+{len(differing) - 3} more)" if len(differing) > 3 else ""
    return ", ".join(differing[:3]) + more


def open_run(out: str | Path, cfg: Config, *, kind: str, force: bool, resume: bool,
             distributed: Distributed = SINGLE) -> tuple[RunDir, bool]:
    """The run folder, and whether to continue the run it holds (`kind`: "teacher" or "distill").

    A folder holding a run with the same config continues it (re-running a command after a crash
    or pre-emption resumes); a different config is refused unless --resume (continue it with this
    config) or --force (start over). Every rank decides before rank 0 writes anything."""
    resuming = _resume_decision(out, cfg, kind, force=force, resume=resume)
    distributed.barrier()
    if distributed.is_main:
        run = RunDir(out, resume=True) if resuming else RunDir(out, force=force)
    distributed.barrier()
    if not distributed.is_main:
        run = RunDir(out, writer=False)
    return run, resuming


def _resume_decision(out: str | Path, cfg: Config, kind: str, *, force: bool, resume: bool) -> bool:
    if holds_run(out) and not force:
        if not resume:
            differing = config_differences(out, cfg, kind)
            if differing:
                raise DfadError(f"output folder {out} holds a different run ({describe_differences(differing)}); "
                                f"pass --resume to continue it with this config, --force to overwrite it, "
                                f"or choose another --out")
        return True
    if resume and not force:
        raise DfadError(f"--resume: {out} holds no run to continue; drop --resume to start one there")
    return False
