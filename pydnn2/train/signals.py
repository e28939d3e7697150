"""Stopping training gracefully: Ctrl-C (SIGINT) and SIGTERM finish the current batch.

While training runs, :class:`StopSignals` replaces the SIGINT and SIGTERM
handlers (in the main thread only; job schedulers and ``torchrun`` send
SIGTERM). The first signal asks the run's
:class:`~pydnn2.train.stop.StopRequest` to stop, naming the signal: the loop
finishes its batch (under torchrun, every rank after the same batch), writes an
'interrupted' checkpoint, skips whatever phase remains, and ``train`` raises
:class:`~pydnn2.errors.TrainingInterrupted`. A second signal raises
``KeyboardInterrupt`` at once. The previous handlers come back when training
ends.
"""

import signal
import threading

SIGNALS = tuple(getattr(signal, name) for name in ('SIGINT', 'SIGTERM')
                if hasattr(signal, name))


class StopSignals:
    """First SIGINT or SIGTERM: finish the current batch, save an 'interrupted'
    checkpoint and stop training. A second one interrupts at once.

    Parameters
    ----------
    stop : pydnn2.train.stop.StopRequest
        The run's stop request, which the first signal asks.
    log : callable, optional
        Told what the first signal does.
    """

    def __init__(self, stop, log=None):
        self.stop, self.log, self.previous = stop, log, {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def _handle(self, signum, frame):
        if self.stop.interrupts:
            raise KeyboardInterrupt
        name = signal.Signals(signum).name
        self.stop.ask(name, name)
        if self.log is not None:
            self.log(f'{name}: stopping after this batch and saving a checkpoint '
                     '(a second signal stops at once)')

    def __exit__(self, *exc):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        return False
