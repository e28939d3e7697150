"""Using a trained net: predictions, outputs, metrics and confusion matrices.

- :mod:`.inference`: batches sized to the device, logits, the loss and error of a set,
  and :func:`inference_mode_of` (evaluation mode that gives the module its modes back);
- :mod:`.predict`: :func:`predict`, :func:`get_outputs`, :func:`evaluate` (metrics);
- :mod:`.metrics`: the metrics (``Accuracy``, ``LogLoss``, ...);
- :mod:`.confusion`: confusion matrices and mistakes;
- :mod:`.interpret`: error analysis as plain data (:class:`Interpretation`);
- :mod:`.plots`: pictures of training and mistakes (matplotlib, the ``plot`` extra).
"""

from .confusion import confusion_matrix, get_confusion_matrices, make_confusion_matrix
from .inference import (EVAL_BATCH_SIZE, device_set, eval_batch_size, evaluate_set,
                        inference_batch_size, inference_mode_of, iter_logits,
                        iter_probabilities, named_set)
from .metrics import (Accuracy, LogLoss, Metric, Misclassification, PrecisionRecall,
                      TopKMisclassification, as_metrics)
from .interpret import ConfusedPair, Interpretation, TopLoss, interpret
from .predict import evaluate, get_outputs, metric_values, predict

__all__ = ['predict', 'get_outputs', 'evaluate', 'metric_values', 'confusion_matrix',
           'make_confusion_matrix', 'get_confusion_matrices', 'evaluate_set', 'device_set',
           'named_set', 'iter_logits', 'iter_probabilities', 'eval_batch_size',
           'inference_batch_size', 'inference_mode_of', 'EVAL_BATCH_SIZE',
           'Metric', 'Misclassification',
           'Accuracy', 'TopKMisclassification', 'LogLoss', 'PrecisionRecall', 'as_metrics',
           'interpret', 'Interpretation', 'ConfusedPair', 'TopLoss']
