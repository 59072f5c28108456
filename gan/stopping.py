"""Stopping a run cleanly: Ctrl-C or SIGTERM ends it after the current step, with a checkpoint."""

from __future__ import annotations

import signal
import threading


class StopSignals:
    """Ctrl-C or SIGTERM asks the loop to stop after the current step and save; a second Ctrl-C aborts at once.

    The handler only sets a flag: printing from a signal handler can collide with the loop's own output.
    """

    def __init__(self):
        self.requested = False
        self.previous: dict = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():  # handlers can only be set there
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
