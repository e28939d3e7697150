"""Builder errors that point at the user's line, not at pydnn2's insides.

When a builder call (``net.add_convolution(...)``, ``merge_pathways``, ...)
raises a pydnn2 error (:class:`~pydnn2.errors.NetBuildError`,
:class:`~pydnn2.errors.ConfigError`, :class:`~pydnn2.errors.DataError`), the
call's wrapper (:func:`pydnn2.model.recording.recorded`) raises it again with
pydnn2's own frames cut out of its traceback (as Keras does), so the traceback
ends at the user's line and the message. Frames of the user's own code
called from inside pydnn2 (a layer spec of their own, say) stay.

One pydnn2 frame cannot be cut: the wrapper's ``raise`` itself, which Python
adds as the error leaves it, shown last as one line of
``pydnn2/model/recording.py`` (Keras's filtered tracebacks end the same way).

:func:`set_traceback_filtering` turns this off (to debug pydnn2 itself).

>>> previous = set_traceback_filtering(False)
>>> set_traceback_filtering(previous)
False
"""

import os
import sys
import types
import warnings

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep

_state = {'filtering': True}


def set_traceback_filtering(enabled):
    """Turn the filtering of pydnn2's frames out of builder errors on or off.

    Parameters
    ----------
    enabled : bool
        True (the default): a builder call's pydnn2 error shows the user's
        line and the message, without pydnn2's internal frames. False: the
        whole traceback, for debugging pydnn2.

    Returns
    -------
    bool
        The previous setting, so it can be put back.

    Examples
    --------
    >>> import pydnn2
    >>> pydnn2.set_traceback_filtering(False)           # doctest: +SKIP
    True
    """
    previous = _state['filtering']
    _state['filtering'] = bool(enabled)
    return previous


def filtering():
    """Whether builder errors are filtered (see :func:`set_traceback_filtering`)."""
    return _state['filtering']


def is_internal(frame):
    """Whether ``frame`` runs code in a file of the pydnn2 package."""
    return os.path.abspath(frame.f_code.co_filename).startswith(PACKAGE_DIR)


def warn_at_user(message, category=UserWarning):
    """Warn at the user's line: the first caller outside pydnn2."""
    frame, level = sys._getframe(0), 1
    while frame is not None and is_internal(frame):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


def without_internal_frames(tb):
    """The traceback ``tb`` with every pydnn2 frame left out (None if nothing is left)."""
    kept = []
    while tb is not None:
        if not is_internal(tb.tb_frame):
            kept.append(tb)
        tb = tb.tb_next
    filtered = None
    for entry in reversed(kept):
        filtered = types.TracebackType(filtered, entry.tb_frame, entry.tb_lasti,
                                       entry.tb_lineno)
    return filtered
