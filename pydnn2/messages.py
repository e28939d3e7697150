"""What pydnn2 says while it works: records of the ``pydnn2`` logger.

Training's messages (the measured speeds, resuming from, best net saved,
stopped by, interrupted) are ``logging`` records of the ``pydnn2.train`` logger
(a child of ``pydnn2``) at INFO level, sent by :func:`say` on rank 0. A net's
``verbose`` (or ``train``'s) decides whether they are shown on the console:
pydnn2's :data:`console` handler prints the records marked to be shown on
stdout, beside the progress bars, as the epoch table is printed. An
application that configures ``logging`` receives every record, shown or not,
through the usual propagation; to keep pydnn2 off the console then, remove the handler:
``logging.getLogger('pydnn2').removeHandler(pydnn2.messages.console)``.

Warnings stay ``warnings``; the epoch table and the progress bars stay on
stdout.

>>> say('hello from pydnn2')
hello from pydnn2
>>> say('not shown', show=False)
"""

import logging

from . import progress

logger = logging.getLogger('pydnn2')


class ConsoleHandler(logging.Handler):
    """Prints the records marked ``show`` on stdout, clearing and redrawing any
    progress bar (:func:`pydnn2.progress.write`)."""

    def emit(self, record):
        """Print ``record``'s message if it is to be shown."""
        if getattr(record, 'show', False):
            try:
                progress.write(self.format(record))
            except Exception:  # noqa: BLE001 - logging reports its handlers' failures
                self.handleError(record)


#: The handler that shows verbose training's messages on stdout.
console = ConsoleHandler()
if not any(isinstance(h, ConsoleHandler) for h in logger.handlers):
    logger.addHandler(console)
if logger.level == logging.NOTSET:
    logger.setLevel(logging.INFO)


def say(message, show=True, name='pydnn2'):
    """Log ``message`` at INFO under the logger ``name`` (a ``pydnn2`` child); print it
    on stdout too when ``show`` (verbose)."""
    logging.getLogger(name).info(message, extra={'show': bool(show)})
