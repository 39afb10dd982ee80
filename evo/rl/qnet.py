"""K independent MLP Q-networks evaluated in lockstep with batched matmuls.

Training several agents at once (several seeds of one loss, or several losses)
amortizes Python overhead: every layer is one ``np.matmul`` over a leading agent
axis. Backprop is written by hand; the loss program supplies d(loss)/d(outputs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

Array = np.ndarray


class QNetworks:
    """``k`` ReLU MLPs with identical shapes: ``sizes = (obs_dim, *hidden, n_actions)``.

    Parameters are float32 arrays with a leading agent axis: weights ``(k, in, out)``,
    biases ``(k, 1, out)``. Initialization matches PyTorch's ``nn.Linear`` (uniform in
    ±1/sqrt(fan_in)), the peer implementation's default.
    """

    def __init__(self, sizes: Sequence[int], rngs: Sequence[np.random.Generator],
                 dtype: type = np.float32) -> None:
        self.sizes = tuple(int(s) for s in sizes)
        self.k = len(rngs)
        self.shapes = [
            shape
            for fan_in, fan_out in zip(self.sizes[:-1], self.sizes[1:])
            for shape in ((self.k, fan_in, fan_out), (self.k, 1, fan_out))
        ]
        # All parameters live in one flat buffer (the optimizer works on it in one go);
        # ``params`` are shaped views into it.
        self.flat = np.empty(sum(math.prod(s) for s in self.shapes), dtype)
        self.params = self.views(self.flat)
        for layer, (fan_in, fan_out) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            bound = 1.0 / math.sqrt(fan_in)
            w = np.stack([r.uniform(-bound, bound, (fan_in, fan_out)) for r in rngs])
            b = np.stack([r.uniform(-bound, bound, (1, fan_out)) for r in rngs])
            self.params[2 * layer][...] = w
            self.params[2 * layer + 1][...] = b

    def views(self, flat: Array) -> list[Array]:
        """Views of a flat buffer shaped like the parameters."""
        out, start = [], 0
        for shape in self.shapes:
            n = math.prod(shape)
            out.append(flat[start:start + n].reshape(shape))
            start += n
        return out

    @property
    def n_layers(self) -> int:
        return len(self.params) // 2

    def forward(self, x: Array) -> tuple[Array, list[Array]]:
        """Outputs ``(k, n, n_actions)`` for inputs ``(k, n, obs_dim)``, and the layer
        inputs needed by :meth:`backward`."""
        acts = []
        h = x
        last = self.n_layers - 1
        for layer in range(self.n_layers):
            acts.append(h)
            h = np.matmul(h, self.params[2 * layer]) + self.params[2 * layer + 1]
            if layer < last:
                np.maximum(h, 0.0, out=h)
        return h, acts

    def __call__(self, x: Array) -> Array:
        return self.forward(x)[0]

    def backward(self, acts: list[Array], grad_out: Array, into: list[Array],
                 accumulate: bool = False) -> None:
        """Parameter gradients given d(loss)/d(outputs), written (or, with
        ``accumulate``, added) into ``into``: views shaped like ``params``."""
        g = grad_out
        for layer in range(self.n_layers - 1, -1, -1):
            h = acts[layer]
            dw, db = into[2 * layer], into[2 * layer + 1]
            if accumulate:
                dw += np.matmul(h.transpose(0, 2, 1), g)
                db += g.sum(axis=1, keepdims=True)
            else:
                np.matmul(h.transpose(0, 2, 1), g, out=dw)
                np.sum(g, axis=1, keepdims=True, out=db)
            if layer:
                g = np.matmul(g, self.params[2 * layer].transpose(0, 2, 1))
                g *= h > 0  # ReLU: acts[layer] is the previous layer's ReLU output

    def copy_from(self, other: QNetworks) -> None:
        """Hard copy of every parameter (target-network update)."""
        np.copyto(self.flat, other.flat)

    def clone(self) -> QNetworks:
        twin = object.__new__(QNetworks)
        twin.sizes, twin.k, twin.shapes = self.sizes, self.k, self.shapes
        twin.flat = self.flat.copy()
        twin.params = twin.views(twin.flat)
        return twin

    def finite(self) -> Array:
        """Per agent: whether every parameter is finite."""
        ok = np.ones(self.k, dtype=bool)
        for p in self.params:
            ok &= np.isfinite(p).reshape(self.k, -1).all(axis=1)
        return ok


class Adam:
    """Adam (Kingma & Ba, 2015) on one flat parameter buffer, in place and without
    temporary arrays; the update equals PyTorch's ``torch.optim.Adam``."""

    def __init__(self, flat: Array, lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        self.flat = flat
        self.lr, self.b1, self.b2, self.eps = lr, betas[0], betas[1], eps
        self.m = np.zeros_like(flat)
        self.v = np.zeros_like(flat)
        self._tmp = np.zeros_like(flat)
        self.t = 0

    def step(self, grad: Array) -> None:
        """One update with the gradient ``grad`` (flat, like the parameters)."""
        self.t += 1
        b1, b2, m, v, tmp = self.b1, self.b2, self.m, self.v, self._tmp
        c1 = 1.0 - b1**self.t
        c2 = 1.0 - b2**self.t
        m *= b1
        np.multiply(grad, 1.0 - b1, out=tmp)
        m += tmp
        v *= b2
        np.multiply(grad, grad, out=tmp)
        tmp *= 1.0 - b2
        v += tmp
        # p -= lr * (m / c1) / (sqrt(v / c2) + eps), rearranged to stay in place
        np.sqrt(v, out=tmp)
        tmp += self.eps * math.sqrt(c2)
        np.divide(m, tmp, out=tmp)
        tmp *= self.lr * math.sqrt(c2) / c1
        self.flat -= tmp
