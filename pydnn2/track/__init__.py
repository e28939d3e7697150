"""Tracking: training runs recorded for TensorBoard and MLflow, as callbacks.

- :class:`TensorBoardLogger`: scalars every epoch, the layer table, and the
  confusion matrix and worst mistakes at the end, for ``tensorboard --logdir``;
- :class:`MLflowLogger`: params, metrics every epoch, artifacts (the best
  net, learning curves, confusion matrix) and tags in an MLflow run, which a
  resumed run continues.

Both need the ``track`` extra (``pip install pydnn2[track]``), imported only
when training starts; both log on the first process alone under torchrun.

>>> from pydnn2.track import MLflowLogger, TensorBoardLogger
>>> net.train(nn.Adam(0.01), epochs=10, callbacks=[
...     TensorBoardLogger('runs/digits'),
...     MLflowLogger('sqlite:///mlflow.db', experiment='digits')])   # doctest: +SKIP
"""

from .mlflow_logger import MLflowLogger
from .tensorboard_logger import TensorBoardLogger, scalar_tag

__all__ = ['MLflowLogger', 'TensorBoardLogger', 'scalar_tag']
