"""Optimizers torch lacks: classical momentum and Adam with the decay of b1.

Both keep their state (velocities, step counts, moments) in the optimizer
state, so ``state_dict()`` captures everything needed to resume exactly, and
both update all parameters of a group at once with ``torch._foreach_*`` ops.
"""

import math

import torch


def _closure_loss(closure):
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


class MomentumOptimizer(torch.optim.Optimizer):
    """Classical momentum: ``v = momentum * v - lr * g``, then ``p = p + v``.

    The velocity ``v`` starts at zero and lives in the optimizer state (key
    ``'velocity'``), so ``state_dict()`` captures it. Takes ``params`` (tensors
    or parameter-group dicts), ``lr`` and ``momentum``.
    """

    def __init__(self, params, lr, momentum=0.0):
        super().__init__(params, {'lr': lr, 'momentum': momentum})

    @torch.no_grad()
    def step(self, closure=None):
        """Update every parameter that has a gradient."""
        loss = _closure_loss(closure)
        for group in self.param_groups:
            params = [p for p in group['params'] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            velocities = [self._velocity(p) for p in params]
            torch._foreach_mul_(velocities, group['momentum'])
            torch._foreach_add_(velocities, grads, alpha=-group['lr'])
            torch._foreach_add_(params, velocities)
        return loss

    def _velocity(self, param):
        state = self.state[param]
        if 'velocity' not in state:
            state['velocity'] = torch.zeros_like(param, memory_format=torch.preserve_format)
        return state['velocity']


class AdamOptimizer(torch.optim.Optimizer):
    """Adam as in Kingma & Ba (arXiv:1412.6980v4), with the decay of ``b1``.

    At step ``t`` (from 1) of a parameter::

        b1_t = b1 * lmbda ** (t - 1)
        m = b1_t * m + (1 - b1_t) * g
        v = b2 * v + (1 - b2) * g ** 2
        p = p - lr * (m / (1 - b1 ** t)) / (sqrt(v / (1 - b2 ** t)) + e)

    ``torch.optim.Adam`` lacks ``lmbda``, hence this class. It takes
    ``params`` (tensors or parameter-group dicts) and the numbers of
    :class:`~pydnn2.train.rules.Adam`; each parameter's ``'step'``, ``'exp_avg'`` and
    ``'exp_avg_sq'`` are in ``state_dict()``.
    """

    def __init__(self, params, lr, b1=0.9, b2=0.999, e=1e-8, lmbda=1 - 1e-8):
        super().__init__(params, {'lr': lr, 'b1': b1, 'b2': b2, 'e': e, 'lmbda': lmbda})

    @torch.no_grad()
    def step(self, closure=None):
        """Update every parameter that has a gradient."""
        loss = _closure_loss(closure)
        for group in self.param_groups:
            for t, tensors in self._by_step(group).items():
                self._update(group, t, *tensors)
        return loss

    def _by_step(self, group):
        """Advance each parameter's step; group (params, grads, m, v) lists by step."""
        buckets = {}
        for param in group['params']:
            if param.grad is None:
                continue
            state = self.state[param]
            if not state:
                state['step'] = 0
                state['exp_avg'] = torch.zeros_like(param, memory_format=torch.preserve_format)
                state['exp_avg_sq'] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state['step'] += 1
            lists = buckets.setdefault(state['step'], ([], [], [], []))
            for items, tensor in zip(lists, (param, param.grad, state['exp_avg'],
                                             state['exp_avg_sq'])):
                items.append(tensor)
        return buckets

    @staticmethod
    def _update(group, t, params, grads, means, squares):
        b1, b2 = group['b1'], group['b2']
        b1_t = b1 * group['lmbda'] ** (t - 1)
        torch._foreach_mul_(means, b1_t)
        torch._foreach_add_(means, grads, alpha=1 - b1_t)
        torch._foreach_mul_(squares, b2)
        torch._foreach_addcmul_(squares, grads, grads, value=1 - b2)
        denominators = torch._foreach_sqrt(squares)
        torch._foreach_div_(denominators, math.sqrt(1 - b2 ** t))
        torch._foreach_add_(denominators, group['e'])
        torch._foreach_addcdiv_(params, means, denominators, value=-group['lr'] / (1 - b1 ** t))
