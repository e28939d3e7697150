"""Names that moved keep working one release with a DeprecationWarning; error messages
list the learning rules from the rules defined, not from a list written down."""

import numpy as np
import pytest

from pydnn2 import data, files, preprocess
from pydnn2.errors import ConfigError
from pydnn2.preprocess.base import Preprocessor
from pydnn2.train import rules


def test_a_preprocessors_get_state_and_set_state_are_its_random_state():
    sets = preprocess.split_training_data(data.load_digits(), 20, 60, 20, 20,
                                          rng=np.random.RandomState(0))
    pre = preprocess.ArrayPreprocessor(sets)
    with pytest.warns(DeprecationWarning, match='get_state is now random_state'):
        state = pre.get_state()
    assert state == pre.random_state()
    with pytest.warns(DeprecationWarning, match='set_state is now set_random_state'):
        pre.set_state(state)


def test_a_preprocessor_written_for_the_old_names_still_serves_the_new_ones():
    with pytest.warns(DeprecationWarning, match='define random_state'):
        class Old(Preprocessor):          # (abstract: only its methods are looked at)
            def get_state(self):
                return {'epoch': 3}

            def set_state(self, state):
                self.restored = state
    assert Old.random_state is Old.get_state and Old.set_random_state is Old.set_state


def test_background_writer_is_background_saver():
    with pytest.warns(DeprecationWarning, match='BackgroundSaver'):
        assert files.BackgroundWriter is files.BackgroundSaver


def test_rule_lists_in_errors_come_from_the_rules_defined(monkeypatch):
    monkeypatch.setattr(rules, '_RULES', list(rules._RULES))     # (Lion goes after the test)

    class Lion(rules.LearningRule):
        """A rule defined elsewhere is named too."""

        def make_optimizer(self, params):
            raise NotImplementedError

    assert rules.rule_names().startswith('StochasticGradientDescent, Momentum, Adam, AdaDelta')
    with pytest.raises(ConfigError, match=r'updater must be a learning rule \(Stochastic.*'
                                          r'AdaDelta.* or Lion\); received str'):
        rules.check_rule('sgd')
