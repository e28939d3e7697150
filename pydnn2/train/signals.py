"""Stopping training gracefully: the first Ctrl-C finishes the current batch.

While training runs, :class:`CtrlC` replaces the SIGINT handler (in the main
thread only): the first Ctrl-C sets the session's ``stop_requested``, so the
loop finishes its batch, writes an 'interrupted' checkpoint and ends the
phase; a second Ctrl-C raises ``KeyboardInterrupt`` at once.
"""

import signal
import threading


class CtrlC:
    """First Ctrl-C: finish the current batch, save an 'interrupted' checkpoint
    and end the phase. A second Ctrl-C interrupts at once."""

    def __init__(self, session):
        self.session, self.previous = session, None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.session.stop_requested:
            raise KeyboardInterrupt
        self.session.stop_requested = True
        self.session.log('Ctrl-C: stopping after this batch (press again to stop at once)')

    def reset(self):
        """Forget a stop request (the next phase starts afresh)."""
        self.session.stop_requested = False

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        return False
