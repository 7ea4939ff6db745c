"""One writer per run folder: an advisory lock held while a run writes there.

Two processes writing one folder (a command launched twice, two `dfad reproduce` calls sharing an
--out) interleave checkpoints and metrics, or one's --force clears the other's files. The lock is
`flock` on the folder itself: no file is left behind, and the kernel releases it when the process
dies however it dies, so a crashed run never blocks its own resume. Within one process the lock is
re-entrant (a run that crashed under a test harness and is resumed in the same process)."""
from __future__ import annotations

import os
import weakref
from pathlib import Path

from ..errors import DfadError

try:
    import fcntl
except ImportError:  # Windows: no flock; runs go unguarded there
    fcntl = None

_held: dict[str, list[int]] = {}  # resolved folder -> [descriptor, holders in this process]


def _release(key: str) -> None:
    entry = _held.get(key)
    if entry is None:
        return
    entry[1] -= 1
    if entry[1] == 0:
        del _held[key]
        os.close(entry[0])  # closing the descriptor releases the flock


class FolderLock:
    """Held from construction until `release()` (or until this object is garbage-collected)."""

    def __init__(self, folder: str | Path):
        key = str(Path(folder).resolve())
        if fcntl is not None:
            if key in _held:
                _held[key][1] += 1
            else:
                descriptor = os.open(key, os.O_RDONLY)
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(descriptor)
                    raise DfadError(f"another process is writing a run in {folder}; wait for it to end "
                                    f"(or stop it), or choose another --out") from None
                _held[key] = [descriptor, 1]
            self._finalizer = weakref.finalize(self, _release, key)
        else:
            self._finalizer = None

    def release(self) -> None:
        if self._finalizer is not None:
            self._finalizer()  # runs _release at most once per lock
