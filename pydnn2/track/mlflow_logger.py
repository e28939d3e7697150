"""MLflowLogger: a training run as an MLflow run (params, metrics, artifacts, tags).

Writes through MLflow's client (the ``track`` extra: ``pip install pydnn2[track]``
installs mlflow-skinny with the SQLite tracking store). The MLflow run's id
is kept in the checkpoints, so a resumed run goes on in the same MLflow run.
"""

import csv
import io
import os
import tempfile
import time

from .. import checks
from ..evaluate import plots
from ..errors import ConfigError
from ..extras import require
from ..train.callbacks import Callback
from .common import check_figures, end_figures, epoch_scalars, run_params

#: The metric whose steps tell which epochs an MLflow run already holds.
WITNESS = 'train_loss'


def _experiment_id(client, name, errors, artifact_location=None):
    """The id of the experiment ``name``, made if it does not exist (by this process
    or, at the same moment, another)."""
    found = client.get_experiment_by_name(name)
    if found is None:
        try:
            return client.create_experiment(name, artifact_location=artifact_location)
        except errors.MlflowException:          # another process made it first
            found = client.get_experiment_by_name(name)
            if found is None:
                raise
    if found.lifecycle_stage != 'active':
        raise ConfigError(f'MLflowLogger: experiment {name!r} is deleted in MLflow; restore it '
                          f'or choose another experiment name')
    return found.experiment_id


def _confusion_csv(found):
    """The confusion matrix as CSV: a row per actual class, a column per predicted."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(['actual \\ predicted'] + found.class_names)
    for name, row in zip(found.class_names, found.confusion.tolist()):
        writer.writerow([name] + row)
    return out.getvalue()


class MLflowLogger(Callback):
    """Record a training run in MLflow.

    - params: the net's settings and builder calls (``net.call.00`` ...), the
      training options (``train.epochs`` ...), the rule and the annealer;
    - metrics at step ``epoch``: every number of the epoch's row (``train_loss``,
      ``valid_error``, ``valid_<metric>``, ``learning_rate``, ``seconds``) and the
      momentum of a :class:`~pydnn2.neuralnet.Momentum` rule;
    - artifacts at the end: the best net file (``net/``), the learning curves
      the confusion matrix on the validation set (PNG and CSV) and its worst
      mistakes (PNG);
    - tags: ``pydnn2.run_id`` (the id every file of the run carries), ``pydnn2.net``;
    - status: FINISHED, KILLED when a signal stopped training, FAILED when training
      raised (the MLflow run of a process killed outright stays RUNNING until a
      resume goes on in it).

    Only the first process logs under torchrun (one MLflow run). Each epoch's
    metrics are queued for MLflow's logging thread (``log_batch(...,
    synchronous=False)``), so training does not wait for the store;
    :meth:`flush`, and the end of training, wait for them. The MLflow run's id
    and the last epoch logged are the callback's state, kept in checkpoints: a
    resumed run goes on in the same MLflow run, logs the epochs up to its
    checkpoint that MLflow lacks (queued when the process died), and does not
    log again the epochs the interrupted run logged after its checkpoint (which
    the resumed run trains again, to the same numbers).

    Parameters
    ----------
    tracking_uri : str, optional
        Where MLflow records runs, e.g. ``'sqlite:///mlflow.db'`` (a local
        SQLite file) or a tracking server's URL; default: MLflow's own
        (``MLFLOW_TRACKING_URI``).
    experiment : str
        The MLflow experiment (made when it does not exist).
    run_name : str, optional
        The MLflow run's name (default: MLflow chooses one).
    tags : dict, optional
        More tags for the run.
    artifacts : bool
        Log the best net and the figures at the end.
    parent_run_id : str, optional
        Nest the run under this MLflow run (e.g. a search's).
    artifact_location : str, optional
        Where a new experiment keeps its artifacts (default: the tracking
        store's, for an SQLite store ``./mlruns`` in the working folder).

    Examples
    --------
    >>> net.train(nn.Adam(0.01), epochs=10, callbacks=[
    ...     MLflowLogger('sqlite:///mlflow.db', experiment='digits')])   # doctest: +SKIP
    """

    rank_zero_only = True

    def __init__(self, tracking_uri=None, experiment='pydnn2', run_name=None, tags=None,
                 artifacts=True, parent_run_id=None, artifact_location=None):
        where = 'MLflowLogger'
        self.tracking_uri = checks.path(tracking_uri, 'tracking_uri', where=where, none=True)
        self.artifact_location = checks.path(artifact_location, 'artifact_location',
                                             where=where, none=True)
        if not isinstance(experiment, str) or not experiment:
            raise ConfigError(f'MLflowLogger: experiment must be a non-empty name; received '
                              f'{experiment!r}')
        if tags is not None and not isinstance(tags, dict):
            raise ConfigError(f'MLflowLogger: tags must be a dict of names to values; '
                              f'received {type(tags).__name__}')
        self.experiment, self.run_name, self.parent_run_id = experiment, run_name, parent_run_id
        self.tags = {str(k): str(v) for k, v in (tags or {}).items()}
        self.artifacts = bool(artifacts)
        self.run_id = None        # the MLflow run (state: kept in checkpoints)
        self.last_epoch = 0       # the last epoch whose metrics it holds (state)
        self._client, self._pending = None, []

    def state_dict(self):
        """The MLflow run's id and the last epoch logged."""
        return {'run_id': self.run_id, 'last_epoch': self.last_epoch}

    def load_state_dict(self, state):
        """Take back :meth:`state_dict`'s state (a resumed run)."""
        self.run_id, self.last_epoch = state['run_id'], state['last_epoch']

    @property
    def client(self):
        """The ``mlflow.MlflowClient`` it logs through (made at the start of training)."""
        return self._client

    def on_train_begin(self, net, logs):
        mlflow = require('mlflow', 'MLflowLogger', 'track')
        if self.artifacts:
            check_figures('MLflowLogger')
        self._client, self._pending = mlflow.MlflowClient(self.tracking_uri), []
        if logs.get('epochs_done', 0) == 0 or self.run_id is None:
            self._start(net, mlflow.exceptions)
        else:               # a resumed run: MLflow says which epochs it holds
            self._client.update_run(self.run_id, status='RUNNING')
            self.last_epoch = self._logged_through()
        self._log_rows(net.history)    # the resumed epochs MLflow lacks (all, for a new run)

    def _start(self, net, errors):
        """A new MLflow run with the tags and params of this training run."""
        session = self.session
        tags = {'pydnn2.net': net.name, **self.tags}
        if session is not None and getattr(session, 'run', None) is not None:
            tags['pydnn2.run_id'] = session.run.id
        if self.parent_run_id:
            tags['mlflow.parentRunId'] = self.parent_run_id
        experiment = _experiment_id(self._client, self.experiment, errors,
                                    self.artifact_location)
        run = self._client.create_run(experiment, run_name=self.run_name, tags=tags)
        self.run_id, self.last_epoch = run.info.run_id, 0
        params = run_params(net, getattr(session, 'config', None), getattr(session, 'rule', None))
        entities = require('mlflow.entities', 'MLflowLogger', 'track')
        self._client.log_batch(self.run_id,
                               params=[entities.Param(k, v) for k, v in params.items()])

    def _logged_through(self):
        """The last epoch the MLflow run holds metrics of (0 for none)."""
        history = self._client.get_metric_history(self.run_id, WITNESS)
        return max((m.step for m in history), default=0)

    def _log_rows(self, history):
        """Log the epochs of ``history`` not logged yet."""
        keys = list(history)
        for values in zip(*history.values()):
            self._log_epoch(dict(zip(keys, values)))

    def _log_epoch(self, row):
        epoch = row['epoch']
        if epoch <= self.last_epoch:           # logged before a kill, trained again since
            return
        entities = require('mlflow.entities', 'MLflowLogger', 'track')
        rule = getattr(self.session, 'rule', None)
        stamp = int(time.time() * 1000)
        metrics = [entities.Metric(key, value, stamp, epoch)
                   for key, value in epoch_scalars(row, rule).items()]
        # queued: MLflow's thread writes it while training goes on (flush waits)
        self._pending.append(self._client.log_batch(self.run_id, metrics=metrics,
                                                    synchronous=False))
        self.last_epoch = epoch

    def flush(self):
        """Wait until MLflow holds every epoch logged so far."""
        for operation in self._pending:
            operation.wait()
        self._pending = []

    def on_epoch_end(self, net, logs):
        self._log_epoch(logs)

    def on_train_end(self, net, logs):
        stopped = getattr(self.session, 'stop_signal', None)
        status = 'FAILED'             # unless the epochs and artifacts are all logged
        try:
            self.flush()
            if self.artifacts and not stopped:
                self._log_artifacts(net)
            status = 'KILLED' if stopped else 'FINISHED'
        finally:
            self._client.set_terminated(self.run_id, status)

    def on_train_error(self, net, logs):
        """The epochs logged so far are written and the MLflow run is marked FAILED
        (a resume of the training run makes it RUNNING again and goes on in it)."""
        if self._client is None or self.run_id is None:
            return
        try:
            self.flush()
        finally:
            self._client.set_terminated(self.run_id, 'FAILED')

    def _log_artifacts(self, net):
        """The best (and final) net file, the learning curves and the confusion matrix."""
        client, run = self._client, self.run_id
        for name in ('best_file', 'final_file'):
            path = getattr(self.session, name, None)
            if path and os.path.isfile(path):
                client.log_artifact(run, path, 'net')
        with tempfile.TemporaryDirectory() as folder:
            curves = os.path.join(folder, 'learning_curves.png')
            plots.plot_history(net.history, path=curves)
            client.log_artifact(run, curves)
            figures, found = end_figures(net)
            for name, figure in figures.items():
                picture = os.path.join(folder, f'{name}.png')
                figure.savefig(picture)
                client.log_artifact(run, picture)
            if found is not None:
                client.log_text(run, _confusion_csv(found), 'confusion.csv')
