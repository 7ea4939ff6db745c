"""SIGINT / SIGTERM become a request to stop after the current step (with a checkpoint)."""
from __future__ import annotations

import signal
import threading
from typing import Optional


class StopRequests:
    """Context manager: while active, the first SIGINT or SIGTERM sets `received` instead of
    killing the process; a second SIGINT interrupts at once (KeyboardInterrupt)."""

    def __init__(self):
        self.received: Optional[str] = None
        self._previous = {}

    def _handle(self, signum, frame):
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name

    def __enter__(self) -> "StopRequests":
        if threading.current_thread() is threading.main_thread():  # handlers only install there
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
