"""Several batch sources served one after the other as one set.

:class:`ChainSource` is how the final epochs train on train + valid + test
when they cannot be read as one dataset (a stream among them, or sets read
differently): each set's pass in turn, in the same plan. Every part's pass is
made (its order and seed drawn) before any is read, so a resumed pass draws
what the unbroken one drew; the batches it already did are read again and
dropped.
"""

import dataclasses

from .sources import Batches, BatchSource


class ChainSource(BatchSource):
    """The batches of ``sources``, one source after the other.

    Parameters
    ----------
    sources : list of BatchSource
    """

    def __init__(self, sources):
        self.sources = list(sources)

    @property
    def num_rows(self):
        """Rows of all parts (None when a part's are unknown)."""
        rows = [source.num_rows for source in self.sources]
        return None if None in rows else sum(rows)

    @property
    def varies(self):
        """Whether a part's passes differ."""
        return any(source.varies for source in self.sources)

    def batches(self, plan):
        """Every part's pass (each from its first batch), the first ``plan.start``
        batches of them all dropped."""
        parts = [source.batches(dataclasses.replace(plan, start=0)) for source in self.sources]
        steps = [part.steps for part in parts]
        return Batches(self._chained(parts, plan.start),
                       None if None in steps else sum(steps), plan.start)

    @staticmethod
    def _chained(parts, skip):
        for part in parts:
            for batch in part:
                if skip:
                    skip -= 1
                    continue
                yield batch

    def close(self):
        """Let every part's kept workers go."""
        for source in self.sources:
            source.close()
