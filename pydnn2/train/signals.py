"""Stopping training gracefully: Ctrl-C (SIGINT) and SIGTERM finish the current batch.

While training runs, :class:`StopSignals` replaces the SIGINT and SIGTERM
handlers (in the main thread only; job schedulers and ``torchrun`` send
SIGTERM). The first signal sets the session's ``stop_requested`` and
``stop_signal``: the loop finishes its batch, writes an 'interrupted'
checkpoint, skips whatever phase remains, and ``train`` raises
:class:`~pydnn2.errors.TrainingInterrupted`. A second signal raises
``KeyboardInterrupt`` at once. The previous handlers come back when
training ends.
"""

import signal
import threading

SIGNALS = tuple(getattr(signal, name) for name in ('SIGINT', 'SIGTERM')
                if hasattr(signal, name))


class StopSignals:
    """First SIGINT or SIGTERM: finish the current batch, save an 'interrupted'
    checkpoint and stop training. A second one interrupts at once."""

    def __init__(self, session):
        self.session, self.previous = session, {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def _handle(self, signum, frame):
        session = self.session
        if session.stop_requested:
            raise KeyboardInterrupt
        session.stop_requested, session.stop_signal = True, signal.Signals(signum).name
        session.log(f'{session.stop_signal}: stopping after this batch and saving a checkpoint '
                    '(a second signal stops at once)')

    def __exit__(self, *exc):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        return False
