"""Stopping cleanly on SIGTERM and SIGINT (a cluster scheduler's preemption, Ctrl-C), for the training loop and
the sweep alike: while a :class:`StopSignals` block is active, either signal only records itself (and calls
``on_signal``); the code in the block checks :attr:`StopSignals.received` at a safe point, writes what it must
and stops. Handlers can only be installed from the main thread; elsewhere the block records nothing.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """Context manager: SIGTERM / SIGINT set :attr:`received` to the signal's name and call ``on_signal``.

    With ``second_is_hard`` a second signal while the first is being handled gets the default action (the
    process ends at once), so a stop that hangs can still be forced. The previous handlers come back on exit.
    """

    def __init__(self, on_signal: Callable[[], None] | None = None, second_is_hard: bool = False) -> None:
        self.on_signal = on_signal
        self.second_is_hard = second_is_hard
        self.received: str | None = None
        self._previous: dict = {}

    def _handle(self, signum, frame) -> None:
        if self.received is not None and self.second_is_hard:
            signal.signal(signum, signal.SIG_DFL)
        self.received = signal.Signals(signum).name
        if self.on_signal is not None:
            self.on_signal()

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in SIGNALS}
            # A stop that reached an enclosing block (a sweep worker between its runs' setup and training) holds
            # here too: without this a signal in that window was forgotten and the run trained to its end.
            for handler in self._previous.values():
                outer = getattr(handler, "__self__", None)
                if isinstance(outer, StopSignals) and outer.received is not None and self.received is None:
                    self.received = outer.received
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
