"""Argument checks: one function per kind of value, shared by every module.

Each check returns the value in its plain Python type (``int``, ``float``,
a tuple) or raises ``error`` (:class:`~pydnn2.errors.ConfigError` unless
told otherwise) with a message that names where the argument went, what was
expected and what was received::

    add_hidden: num_units must be a positive integer; received 0

Bad *data* (labels, shapes, NaN) is checked where the data is read, and is a
:class:`~pydnn2.errors.DataError`; these checks are for arguments.

>>> integer(3, 'epochs', minimum=0)
3
>>> number(0.5, 'rate', at_least=0, below=1)
0.5
>>> pair(3, 'filter_shape')
(3, 3)
"""

import math
import numbers
import os

import torch

from .errors import ConfigError


def _fail(value, name, expected, where, error):
    prefix = f'{where}: ' if where else ''
    raise error(f'{prefix}{name} must be {expected}; received {value!r}')


def is_integer(value):
    """Whether ``value`` is an integer (``bool`` is not)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value):
    """Whether ``value`` is a finite real number (``bool`` is not)."""
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value))


def _integer_kind(minimum):
    if minimum == 1:
        return 'a positive integer'
    if minimum == 0:
        return 'a non-negative integer'
    return 'an integer' if minimum is None else f'an integer >= {minimum}'


def integer(value, name, minimum=None, *, maximum=None, expected=None, where='',
            error=ConfigError, none=False):
    """``value`` as an int in ``[minimum, maximum]``; None passes when ``none``.

    ``expected`` replaces the generated description of the allowed range.
    """
    if value is None and none:
        return None
    if not is_integer(value) or (minimum is not None and value < minimum) \
            or (maximum is not None and value > maximum):
        if expected is None:
            expected = (f'an integer from {minimum} to {maximum}' if maximum is not None
                        else _integer_kind(minimum))
            expected += ' or None' if none else ''
        _fail(value, name, expected, where, error)
    return int(value)


def _interval(at_least, above, at_most, below):
    low = f'[{at_least}' if at_least is not None else f'({above}' if above is not None else None
    high = f'{at_most}]' if at_most is not None else f'{below})' if below is not None else None
    if low and high:
        return f'a number in {low}, {high}'
    if low:
        return f'a number {">=" if at_least is not None else ">"} {low[1:]}'
    if high:
        return f'a number {"<=" if at_most is not None else "<"} {high[:-1]}'
    return 'a finite number'


def number(value, name, *, at_least=None, above=None, at_most=None, below=None,
           expected=None, where='', error=ConfigError, none=False):
    """``value`` as a finite float within the given bounds; None passes when ``none``.

    ``expected`` replaces the generated description of the allowed range.
    """
    if value is None and none:
        return None
    ok = is_number(value) and not (
        (at_least is not None and value < at_least) or (above is not None and value <= above)
        or (at_most is not None and value > at_most) or (below is not None and value >= below))
    if not ok:
        expected = expected or (_interval(at_least, above, at_most, below)
                                + (' or None' if none else ''))
        _fail(value, name, expected, where, error)
    return float(value)


def pair(value, name, minimum=1, *, where='', error=ConfigError):
    """``value`` (an int, or a pair of them) as a ``(height, width)`` pair of
    ints ``>= minimum``."""
    if is_integer(value):
        value = (value, value)
    kind = 'positive' if minimum == 1 else 'non-negative' if minimum == 0 else f'>= {minimum}'
    if not (isinstance(value, (tuple, list)) and len(value) == 2
            and all(is_integer(v) and v >= minimum for v in value)):
        _fail(value, name, f'a {kind} integer or a pair (height, width) of them', where, error)
    return int(value[0]), int(value[1])


def number_pair(value, name, what='numbers', *, where='', error=ConfigError):
    """``value`` as a ``(low, high)`` pair of floats (not yet ordered)."""
    if not (isinstance(value, (tuple, list)) and len(value) == 2
            and all(is_number(v) for v in value)):
        _fail(value, name, f'a (low, high) pair of {what}', where, error)
    return float(value[0]), float(value[1])


def one_of(value, name, options, *, where='', error=ConfigError):
    """``value`` if it is one of ``options`` (compared with ``==``)."""
    if not any(value == option and type(value) is type(option) for option in options):
        _fail(value, name, 'one of ' + ', '.join(map(repr, options)), where, error)
    return value


def batch_size(value, name='batch_size', where=''):
    """A batch size: a positive integer."""
    return integer(value, name, 1, where=where)


def device(value, name='device'):
    """``value`` as a ``torch.device`` that exists on this machine.

    A CUDA (or MPS) device torch cannot reach here is a :class:`ConfigError`
    naming it, not torch's ``AssertionError`` when the first tensor moves.
    """
    try:
        result = torch.device(value)
    except (RuntimeError, TypeError):
        raise ConfigError(f"{name} must be a torch device such as 'cpu' or 'cuda:0'; "
                          f'received {value!r}') from None
    if result.type == 'cuda' and not torch.cuda.is_available():
        raise ConfigError(f'{name} {str(result)!r} is not available: torch finds no CUDA GPU '
                          f"on this machine (torch {torch.__version__}); pass {name}='cpu', "
                          'or leave it out for the best device here')
    if result.type == 'cuda' and (result.index or 0) >= torch.cuda.device_count():
        raise ConfigError(f'{name} {str(result)!r} does not exist: this machine has '
                          f'{torch.cuda.device_count()} CUDA device(s), cuda:0 and up')
    if result.type == 'mps' and not torch.backends.mps.is_available():
        raise ConfigError(f"{name} 'mps' is not available on this machine; pass {name}='cpu'")
    return result


def path(value, name, *, where='', none=False):
    """``value`` as a ``str`` path: a non-empty string or ``os.PathLike``; None passes
    when ``none``."""
    if value is None and none:
        return None
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        _fail(value, name, 'a file or folder path (a non-empty str or os.PathLike)', where,
              ConfigError)
    return os.fspath(value)
