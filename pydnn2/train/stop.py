"""One way to stop training: a :class:`StopRequest` that everything which may stop sets.

Whatever wants training to stop asks the run's one request:

- the annealer, whose ``(stop, message)`` after an epoch asks with ``message``;
- a callback, by raising :class:`~pydnn2.train.callbacks.StopTraining` from any
  hook (caught in one place, the trainer's hook call) or by calling
  ``self.trainer.stop.ask(reason)``;
- Ctrl-C and SIGTERM (:mod:`pydnn2.train.signals`), which also name the signal;
- ``lr_find``, when its sweep is done.

The trainer asks the strategy whether the ranks agree
(:meth:`~pydnn2.train.strategy.Strategy.should_stop`, between batches and
after each epoch), so every rank stops after the same batch or epoch. A request without
a signal ends the phase (the main phase, then the final epochs still run, as in
pydnn); a signal's ends the run, with an interrupted checkpoint.

>>> stop = StopRequest()
>>> stop.requested
False
>>> stop.ask('the learning rate reached its minimum')
>>> stop.requested, stop.interrupts, stop.reason
(True, False, 'the learning rate reached its minimum')
>>> stop.phase_done()
>>> stop.requested
False
"""

import dataclasses
import signal as signals

#: The code a vote carries for a request that names no signal (a signal's is its number).
ASKED = 1


@dataclasses.dataclass
class StopRequest:
    """Why training should stop, once anything has asked."""

    reason: str = None      # what asked, in words (None: nothing has)
    signal: str = None      # 'SIGINT' or 'SIGTERM' when a signal asked

    @property
    def requested(self):
        """Whether anything has asked to stop."""
        return self.reason is not None

    @property
    def interrupts(self):
        """Whether a signal asked (then the run ends, not just the phase)."""
        return self.signal is not None

    @property
    def code(self):
        """What this rank says in a stop vote (0 to go on, :data:`ASKED`, or the number
        of the signal that asked; the largest wins)."""
        if self.signal is not None:
            return signals.Signals[self.signal].value
        return ASKED if self.requested else 0

    def ask(self, reason, signal=None):
        """Ask to stop for ``reason``; a signal (``'SIGINT'``) interrupts the run. The
        first reason stays; a later signal still turns a request into an interrupt."""
        if self.reason is None:
            self.reason = reason
        if signal is not None and self.signal is None:
            self.signal = signal

    def adopt(self, code):
        """Take over the request another rank made, of vote ``code``."""
        name = next((s.name for s in signals.Signals if s.value == code and code != ASKED),
                    None)
        self.ask(f'{name} on another rank' if name else 'another rank asked to stop', name)

    def phase_done(self):
        """Forget a request that ended the phase (a signal's stays: it ends the run)."""
        if self.signal is None:
            self.reason = None

    def __str__(self):
        return self.reason or 'no stop requested'
