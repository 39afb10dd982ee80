"""The RL-loss language of Co-Reyes et al. (2021): types, operators, inputs, probes.

A loss program maps a batch of transitions to a per-sample loss; the training loss
is its batch mean. Shapes: B is the batch size and A the number of actions.
Each operator lists its signatures, its numpy forward and its vector-Jacobian
product together (see ``reference.md`` section 1.1 for the table this implements).
"""

from __future__ import annotations

import math

import numpy as np

from graphs.core.op import Op, Signature, unbroadcast
from graphs.core.opset import OpSet, register_opset
from graphs.core.probe import Probe
from graphs.core.program import Input
from graphs.core.types import ValueType

FLOAT = ValueType("FLOAT", "(B,1), or (1,1) for a constant", "a real number per sample")
LIST = ValueType("LIST", "(B,A)", "a real number per sample and action")
ACTION = ValueType("ACTION", "(B,) int", "an action index per sample")
PROB = ValueType("PROB", "(B,A)", "a distribution over actions per sample")
STATE = ValueType("STATE", "(B,obs...)", "an observation per sample")
PARAM = ValueType("PARAM", "callable STATE -> LIST", "a Q-network")
TYPES = (FLOAT, LIST, ACTION, PROB, STATE, PARAM)
NUMERIC = (FLOAT, LIST)

INPUTS = (
    Input("Q", PARAM, trainable=True, symbol="Q", doc="online Q-network"),
    Input("a_t", ACTION, symbol="a", doc="action taken"),
    Input("s_t", STATE, symbol="s", doc="state"),
    Input("Q_targ", PARAM, symbol="Qt", doc="target Q-network"),
    Input("s_tp1", STATE, symbol="s'", doc="next state"),
    Input("r_t", FLOAT, symbol="r", doc="reward"),
    Input("gamma", FLOAT, symbol="γ", doc="discount γ·(1-done): done is folded in"),
)

EPS_DIV = 1e-10  # Div: x / (y + 1e-10)
EPS_LOG = 1e-12  # Log: log(|x| + 1e-12); also guards log p in Entropy and KL
EXP_CLIP = 1e10  # Exp: clip(exp x, -1e10, 1e10)

# Precedences for rendering: sums < products < prefix reductions < powers < atoms.
SUM, PRODUCT, PREFIX, POWER, ATOM = 10, 20, 25, 30, 100


# -- signature helpers -----------------------------------------------------------------
def _sig(*types: ValueType) -> Signature:
    return Signature(types[:-1], types[-1])


def _unary(types=NUMERIC) -> tuple[Signature, ...]:
    return tuple(_sig(t, t) for t in types)


def _same(types=NUMERIC) -> tuple[Signature, ...]:
    return tuple(_sig(t, t, t) for t in types)


BROADCAST = (
    _sig(FLOAT, FLOAT, FLOAT),
    _sig(FLOAT, LIST, LIST),
    _sig(LIST, FLOAT, LIST),
    _sig(LIST, LIST, LIST),
)


# -- render helpers ----------------------------------------------------------------------
def _infix(symbol: str):
    return lambda a, t: f"{a[0]}{symbol}{a[1]}"


def _call(name: str):
    return lambda a, t: f"{name}({', '.join(a)})"


def _over_actions(name: str):
    """``max_a' Q(s,a')`` when the argument is a network's values (``·`` marks the
    free action), ``max_a'(Q(s,a') + r)`` for a composite argument."""

    def render(a: tuple[str, ...], t) -> str:
        text = a[0].replace("·", "a'")
        if "·" in a[0] and _is_atom(text):
            return f"{name}_a' {text}"
        return f"{name}_a'{text}" if text.startswith("(") else f"{name}_a'({text})"

    return render


def _is_atom(text: str) -> bool:
    """No operator or space outside parentheses or bars (e.g. ``f(x + y)``, ``|x|``)."""
    depth = 0
    for c in text:
        if c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        elif depth == 0 and c in " +-*/^":
            return False
    return True


def _select(a: tuple[str, ...], t) -> str:
    if a[0].endswith(",·)") and a[0].count("·") == 1:
        return a[0].replace("·", a[1])
    return f"{a[0]}[{a[1]}]"


def _sqdist(a: tuple[str, ...], t) -> str:
    inner = f"({a[0]} - {a[1]})^2"
    if t and t[0] == FLOAT:
        return f"0.5*{inner}"
    return "0.5*sum_a'" + inner.replace("·", "a'")  # the sum binds the free action


# -- forward/backward helpers --------------------------------------------------------------
def _pair(a: np.ndarray, b: np.ndarray, xp=np) -> tuple[np.ndarray, np.ndarray, int]:
    """Broadcast a (n,A) list and (n,) actions to a common batch size."""
    n = a.shape[0]
    if n == b.shape[0]:
        return a, b, n
    n = max(n, b.shape[0])
    return xp.broadcast_to(a, (n, a.shape[1])), xp.broadcast_to(b, (n,)), n


def _select_fwd(x: np.ndarray, a: np.ndarray, xp=np) -> np.ndarray:
    xb, ab, n = _pair(x, a, xp)
    return xp.take_along_axis(xb, ab[:, None], axis=1)


def _select_bwd(g, out, x, a):
    xb, ab, n = _pair(x, a)
    gx = np.zeros(xb.shape)
    gx[np.arange(n), ab] = g[:, 0]
    return unbroadcast(gx, x.shape), None


# The helpers below compute exactly what numpy's mean/std/broadcast_to compute (same
# operations in the same order, so the same bits) without their Python-level overhead:
# programs are tiny, so per-call overhead dominates checks, fingerprints and training.
def _spread(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``g`` broadcast to ``shape``, as a new array."""
    out = np.empty(shape)
    out[...] = g
    return out


def _mean(x: np.ndarray, axis: int) -> np.ndarray:
    return x.sum(axis=axis, keepdims=True) / x.shape[axis]


def _onehot_max(x: np.ndarray) -> np.ndarray:
    return np.arange(x.shape[1]) == x.argmax(axis=1)[:, None]


def _std_fwd(axis: int):
    def fwd(x: np.ndarray, xp=np) -> np.ndarray:
        d = x - _mean(x, axis)
        v = _mean(d * d, axis)
        # sqrt only where v > 0: the same values, and a gradient that stays finite
        # (zero) at v == 0 under automatic differentiation.
        pos = v > 0
        return xp.where(pos, xp.sqrt(xp.where(pos, v, 1.0)), v)

    return fwd


def _std_bwd(axis: int):
    def bwd(g, out, x):
        d = x - _mean(x, axis)
        n = x.shape[axis]
        safe = np.where(out > 0, out, 1.0)
        return (np.where(out > 0, g * d / (n * safe), 0.0),)

    return bwd


def _logsumexp(x: np.ndarray, xp=np) -> np.ndarray:
    m = x.max(axis=1, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0.0)
    return m + xp.log(xp.exp(x - m).sum(axis=1, keepdims=True))


def _softmax(x: np.ndarray, xp=np) -> np.ndarray:
    m = x.max(axis=1, keepdims=True)
    e = xp.exp(x - xp.where(xp.isfinite(m), m, 0.0))
    return e / e.sum(axis=1, keepdims=True)


def _exp(x: np.ndarray, xp=np) -> np.ndarray:
    return xp.minimum(xp.exp(xp.minimum(x, 30.0)), EXP_CLIP)


def _mask_bwd(pick_first):
    """Backward of an elementwise max/min: the gradient goes to the chosen argument."""

    def bwd(g, out, x, y):
        first = pick_first(x, y)
        return unbroadcast(g * first, x.shape), unbroadcast(g * ~first, y.shape)

    return bwd


def _const(name: str, value: float) -> Op:
    const = np.full((1, 1), value)
    const.flags.writeable = False  # shared by every evaluation
    return Op(
        name, (Signature((), FLOAT),), lambda xp=np: const, None,
        doc=f"the constant {value}", render=lambda a, t: repr(value), precedence=ATOM,
    )


def _div_bwd(g, x, d):
    return unbroadcast(g / d, x.shape), unbroadcast(-g * x / np.square(d), d.shape)


def _batch_mean_bwd(g, out, x):
    return (_spread(g / x.shape[0], x.shape),)


# -- the operators ------------------------------------------------------------------------
OPS = (
    Op("QValues", (_sig(PARAM, STATE, LIST),), lambda net, s, xp=np: net(s), None,
       doc="a network's per-action values on a state", kind="apply",
       render=lambda a, t: f"{a[0]}({a[1]},·)", precedence=ATOM),
    Op("Select", (_sig(LIST, ACTION, FLOAT),), _select_fwd, _select_bwd,
       doc="list[b, a_b]", render=_select, precedence=ATOM,
       grad_args=(True, False),
       faithful=(True, False)),
    Op("ArgMax", (_sig(LIST, ACTION),), lambda x, xp=np: x.argmax(axis=1), None,
       doc="argmax over actions (carries no gradient)",
       render=_over_actions("argmax"), precedence=PREFIX),
    Op("Max", (_sig(LIST, FLOAT),), lambda x, xp=np: x.max(axis=1, keepdims=True),
       lambda g, out, x: (g * _onehot_max(x),),
       doc="max over actions", render=_over_actions("max"), precedence=PREFIX,
       faithful=(True,)),
    Op("Sum", (_sig(LIST, FLOAT),), lambda x, xp=np: x.sum(axis=1, keepdims=True),
       lambda g, out, x: (_spread(g, x.shape),),
       doc="sum over actions", render=_over_actions("sum"), precedence=PREFIX,
       faithful=(True,)),
    Op("Mean", (_sig(LIST, FLOAT),), lambda x, xp=np: _mean(x, 1),
       lambda g, out, x: (_spread(g / x.shape[1], x.shape),),
       doc="mean over actions", render=_over_actions("mean"), precedence=PREFIX,
       faithful=(True,)),
    Op("Std", (_sig(LIST, FLOAT),), _std_fwd(1), _std_bwd(1),
       doc="standard deviation over actions", render=_over_actions("std"),
       precedence=PREFIX),
    Op("LogSumExp", (_sig(LIST, FLOAT),), _logsumexp,
       lambda g, out, x: (g * np.exp(x - out),),
       doc="log-sum-exp over actions", render=_over_actions("logsumexp"),
       precedence=PREFIX,
       faithful=(True,)),
    Op("Softmax", (_sig(LIST, PROB),), _softmax,
       lambda g, out, x: (out * (g - (g * out).sum(axis=1, keepdims=True)),),
       doc="softmax over actions", render=_call("softmax"), precedence=ATOM),
    Op("Entropy", (_sig(PROB, FLOAT),),
       lambda p, xp=np: (p * xp.log(p + EPS_LOG)).sum(axis=1, keepdims=True),
       lambda g, out, p: (g * (np.log(p + EPS_LOG) + p / (p + EPS_LOG)),),
       doc="sum_a p log p (the reference code's sign)", render=_call("entropy"),
       precedence=ATOM),
    Op("KL", (_sig(PROB, PROB, FLOAT),),
       lambda p, q, xp=np: (p * (xp.log(p + EPS_LOG) - xp.log(q + EPS_LOG))).sum(
           axis=1, keepdims=True),
       lambda g, out, p, q: (
           unbroadcast(g * (np.log(p + EPS_LOG) - np.log(q + EPS_LOG) + p / (p + EPS_LOG)),
                       p.shape),
           unbroadcast(-g * p / (q + EPS_LOG), q.shape)),
       doc="KL(p||q); order matters", render=lambda a, t: f"KL({a[0]} || {a[1]})",
       precedence=ATOM),
    Op("Add", BROADCAST, lambda x, y, xp=np: x + y,
       lambda g, out, x, y: (unbroadcast(g, x.shape), unbroadcast(g, y.shape)),
       doc="x + y", commutative=True, broadcasts=True, render=_infix(" + "),
       precedence=SUM, arg_precedence=(SUM, SUM),
       faithful=(True, True)),
    Op("Sub", BROADCAST, lambda x, y, xp=np: x - y,
       lambda g, out, x, y: (unbroadcast(g, x.shape), unbroadcast(-g, y.shape)),
       doc="x - y; order matters", broadcasts=True, render=_infix(" - "),
       precedence=SUM, arg_precedence=(SUM, SUM + 1),
       faithful=(True, True)),
    Op("Mul", _same(), lambda x, y, xp=np: x * y,
       lambda g, out, x, y: (unbroadcast(g * y, x.shape), unbroadcast(g * x, y.shape)),
       doc="x * y", commutative=True, broadcasts=True, render=_infix("*"),
       precedence=PRODUCT, arg_precedence=(PRODUCT, PRODUCT)),
    Op("MulFloat", (_sig(FLOAT, LIST, LIST),), lambda f, x, xp=np: f * x,
       lambda g, out, f, x: (unbroadcast(g * x, f.shape), unbroadcast(g * f, x.shape)),
       doc="f * x: scale a list by a float", broadcasts=True, render=_infix("*"),
       precedence=PRODUCT, arg_precedence=(PRODUCT, PRODUCT)),
    Op("Max2", _same(), lambda x, y, xp=np: xp.maximum(x, y), _mask_bwd(lambda x, y: x >= y),
       doc="elementwise max(x, y)", commutative=True, broadcasts=True,
       render=_call("max"), precedence=ATOM),
    Op("Min2", _same(), lambda x, y, xp=np: xp.minimum(x, y), _mask_bwd(lambda x, y: x <= y),
       doc="elementwise min(x, y)", commutative=True, broadcasts=True,
       render=_call("min"), precedence=ATOM),
    Op("MaxFloat", (_sig(FLOAT, LIST, LIST),), lambda f, x, xp=np: xp.maximum(f, x),
       _mask_bwd(lambda f, x: f >= x),
       doc="max(f, x) of a float and a list", broadcasts=True, render=_call("max"),
       precedence=ATOM),
    Op("SqDist", (_sig(FLOAT, FLOAT, FLOAT), _sig(LIST, LIST, FLOAT)),
       lambda x, y, xp=np: 0.5 * xp.square(x - y).sum(axis=-1, keepdims=True),
       lambda g, out, x, y: (unbroadcast(g * (x - y), x.shape),
                             unbroadcast(-g * (x - y), y.shape)),
       doc="0.5*(x-y)^2, summed over actions for lists", commutative=True,
       broadcasts=True, render=_sqdist, precedence=PRODUCT,
       arg_precedence=(SUM, SUM + 1),
       faithful=(True, True)),
    Op("Square", _unary(), lambda x, xp=np: xp.square(x), lambda g, out, x: (2.0 * g * x,),
       doc="x^2", render=lambda a, t: f"{a[0]}^2", precedence=POWER,
       arg_precedence=(POWER + 1,),
       faithful=(True,)),
    Op("Div", _same(), lambda x, y, xp=np: x / (y + EPS_DIV),
       lambda g, out, x, y: _div_bwd(g, x, y + EPS_DIV),
       doc="x / (y + 1e-10); order matters", broadcasts=True, render=_infix("/"),
       precedence=PRODUCT, arg_precedence=(PRODUCT, PRODUCT + 1),
       faithful=(True, False)),
    Op("Abs", _unary(), lambda x, xp=np: xp.abs(x), lambda g, out, x: (g * np.sign(x),),
       doc="|x|", render=lambda a, t: f"|{a[0]}|", precedence=ATOM,
       faithful=(True,)),
    Op("Log", _unary(), lambda x, xp=np: xp.log(xp.abs(x) + EPS_LOG),
       lambda g, out, x: (g * np.sign(x) / (np.abs(x) + EPS_LOG),),
       doc="log(|x| + 1e-12)", render=lambda a, t: f"log|{a[0]}|", precedence=ATOM,
       faithful=(True,)),
    Op("Exp", _unary(), _exp, lambda g, out, x: (g * out * (out < EXP_CLIP),),
       doc="clip(exp x, -1e10, 1e10)", render=_call("exp"), precedence=ATOM),
    Op("MeanBatch", _unary(), lambda x, xp=np: _mean(x, 0), _batch_mean_bwd,
       doc="mean over the batch", render=_call("mean_batch"), precedence=ATOM, mixes_rows=True,
       faithful=(True,)),
    Op("StdBatch", _unary(), _std_fwd(0), _std_bwd(0),
       doc="standard deviation over the batch", render=_call("std_batch"),
       precedence=ATOM, mixes_rows=True),
    Op("Tenth", (_sig(FLOAT, FLOAT),), lambda x, xp=np: 0.1 * x, lambda g, out, x: (0.1 * g,),
       doc="0.1 * x", render=lambda a, t: f"0.1*{a[0]}", precedence=PRODUCT,
       arg_precedence=(PRODUCT,),
       faithful=(True,)),
    _const("Const0.5", 0.5),
    _const("Const0.2", 0.2),
    _const("Const0.1", 0.1),
    _const("Const0.01", 0.01),
    Op("Normal", (Signature((), FLOAT),), lambda rng: rng.standard_normal((1, 1)), None,
       doc="a N(0,1) draw", kind="random", render=lambda a, t: "N(0,1)",
       precedence=ATOM),
    Op("Uniform", (Signature((), FLOAT),), lambda rng: rng.uniform(size=(1, 1)), None,
       doc="a U(0,1) draw", kind="random", render=lambda a, t: "U(0,1)",
       precedence=ATOM),
)


# -- probes --------------------------------------------------------------------------------
class RandomMLP:
    """A small fixed random ReLU network, standing in for a Q-network in probes."""

    def __init__(self, rng: np.random.Generator, sizes: tuple[int, ...]) -> None:
        self.layers = [
            (rng.normal(0.0, 1.0 / math.sqrt(i), (i, o)), rng.normal(0.0, 0.1, o))
            for i, o in zip(sizes[:-1], sizes[1:])
        ]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        for k, (w, b) in enumerate(self.layers):
            x = x @ w + b
            if k < len(self.layers) - 1:
                x = np.maximum(x, 0.0)
        return x


PROBE_SAMPLES, PROBE_STATE_DIM, PROBE_ACTIONS = 10, 4, 4
PROBE_FLOAT_RANGE = 100.0


def make_probe(seed: int, scale: float = PROBE_FLOAT_RANGE, rewards=None, gamma=None,
               name: str = "") -> Probe:
    """Random inputs as in the paper's FEC: 10 samples, 4-d states, 4 actions,
    FLOAT and state entries U(-scale, scale), and two different random MLPs.
    ``rewards`` and ``gamma`` (10 values each), where given, replace the random
    ``r_t`` and ``gamma``; ``seed`` also seeds the probe's random-constant draws."""
    rng = np.random.default_rng(seed)
    b, d, a = PROBE_SAMPLES, PROBE_STATE_DIM, PROBE_ACTIONS
    q, q_targ = RandomMLP(rng, (d, 8, a)), RandomMLP(rng, (d, 8, a))
    feed = {
        "Q": q,
        "a_t": rng.integers(0, a, size=b),
        "s_t": rng.uniform(-scale, scale, (b, d)),
        "Q_targ": q_targ,
        "s_tp1": rng.uniform(-scale, scale, (b, d)),
        "r_t": rng.uniform(-scale, scale, (b, 1)),
        "gamma": rng.uniform(-scale, scale, (b, 1)),
    }
    for key, given in (("r_t", rewards), ("gamma", gamma)):
        if given is not None:
            feed[key] = np.asarray(given, dtype=np.float64).reshape(b, 1)
    outputs = {
        (net, s): feed[net](feed[s]) for net in ("Q", "Q_targ") for s in ("s_t", "s_tp1")
    }
    return Probe(feed, outputs, seed, name)


# The probe set for the validity check and fingerprints (docs/fec.md). Three
# batches, each with its own random-draw seed, chosen so that the first draws of
# N(0,1) do not all have the same sign across the batches:
# * "steady": what CartPole gives: every reward 1, no terminal (γ = 0.99
#   everywhere), states U(-3, 3), so Q-values are of order 1;
# * "sparse": rewards in {0, ±1}, mostly negative (mean -0.3), three terminal
#   transitions (γ = 0), the other γ 0.99; Q-values of order 1;
# * "generic": rewards U(-5, 5), γ U(0, 1), states U(-5, 5): no coincidences of
#   round values, and a regime where TD errors are larger than the Q-values.
PROBE_GAMMA = 0.99
PROBE_SPARSE_REWARDS = (-1.0, 0.0, -1.0, 1.0, -1.0, 0.0, -1.0, -1.0, 1.0, 0.0)
PROBE_TERMINALS = (2, 5, 8)
PROBE_SEEDS = {"steady": 1, "sparse": 5, "generic": 3}


def probe_set() -> list[Probe]:
    """The op set's probes (see above)."""
    b = PROBE_SAMPLES
    seeds = PROBE_SEEDS
    sparse_gamma = np.full(b, PROBE_GAMMA)
    sparse_gamma[list(PROBE_TERMINALS)] = 0.0
    generic_gamma = np.random.default_rng(seeds["generic"] + 1).uniform(0.0, 1.0, b)
    return [
        make_probe(seeds["steady"], 3.0, np.ones(b), np.full(b, PROBE_GAMMA), "steady"),
        make_probe(seeds["sparse"], 3.0, PROBE_SPARSE_REWARDS, sparse_gamma, "sparse"),
        make_probe(seeds["generic"], 5.0, None, generic_gamma, "generic"),
    ]


RL_LOSS = register_opset(
    OpSet(
        "rl_loss",
        TYPES,
        OPS,
        INPUTS,
        output_type=FLOAT,
        probes=probe_set,
        doc="Loss functions for value-based RL (Co-Reyes et al., ICLR 2021).",
    )
)
