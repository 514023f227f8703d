r"""Synthetic data drawn from a cosine-router mixture of experts (user guide: :ref:`model`).

.. math::

    y = f_{G^*}(x) + \sigma \varepsilon, \qquad
    f_{G^*}(x) = c + s \sum_{i=1}^{k^*} g_i(x)\, h(a_i^\top x + b_i), \qquad
    \varepsilon \sim N(0, 1) \text{ independent of } x,

with the gates ``g`` of the chosen router.  The regression function is
computed by the package's own forward pass
(:func:`sklearn_cosmoe._model.predict`), so data and estimator share one
definition of the model.
"""

from collections.abc import Mapping
from numbers import Integral

import numpy as np
from sklearn.utils import check_random_state

from ._experts import EXPERTS
from ._model import MoESpec, predict
from ._routers import ROUTERS
from .mixing import MixingMeasure

_INPUTS = ("uniform", "normal")
_PARAM_KEYS = ("gate_coef", "gate_intercept", "expert_coef", "expert_intercept")


def make_cosine_moe(n_samples=1000, n_features=None, n_experts=None, *,
                    router="perturbed_cosine", tau1=1.0, tau2=1.0, temperature=1.0,
                    expert="linear", top_k=None, noise=0.1, params=None,
                    inputs="uniform", random_state=None):
    r"""Draw a regression data set from a mixture of experts.

    Parameters
    ----------
    n_samples : int, default=1000
        Number of rows.
    n_features : int, default=None
        Input dimension ``d``: 2 when ``params`` is None, else taken from
        ``params`` (a value given as well must agree).
    n_experts : int, default=None
        Number of true experts :math:`k^*`: 3 when ``params`` is None, else
        taken from ``params`` (a value given as well must agree).
    router : {"perturbed_cosine", "cosine", "linear"}, default="perturbed_cosine"
    tau1, tau2 : float, default=1.0
        Perturbations of the perturbed cosine router; ``tau1 > 0`` there.
    temperature : float, default=1.0
        The router's cosine (or linear) term is divided by it.
    expert : {"linear", "tanh", "sigmoid", "gelu"}, default="linear"
    top_k : int or None, default=None
        Sparse gates: softmax over the ``top_k`` largest scores.
    noise : float, default=0.1
        Standard deviation :math:`\sigma` of the Gaussian noise.
    params : MixingMeasure or dict, default=None
        The true mixing measure.  A :class:`~sklearn_cosmoe.mixing.MixingMeasure`
        must use the same ``router``, ``tau1`` (perturbed cosine router) and
        ``expert`` as given here; a dict holds the arrays ``gate_coef``,
        ``gate_intercept``, ``expert_coef``, ``expert_intercept`` and may hold
        ``output_scale`` and ``output_intercept``.  None draws one at random
        (see Notes).
    inputs : {"uniform", "normal"}, default="uniform"
        Law of the rows of ``X``: uniform on :math:`[-1, 1]^d`, or standard
        normal.
    random_state : int, RandomState instance or None, default=None
        Seeds the random parameters, the inputs and the noise.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,)
        :math:`f_{G^*}(x) + \sigma \varepsilon`.
    true_params : MixingMeasure
        The true measure :math:`G^*` (a copy: changing it does not change the
        data).

    Notes
    -----
    A random truth (``params=None``) has :math:`\beta_{1i} \sim N(0, 4 I_d)`
    (times ``tau1`` for the perturbed cosine router, so that the gate atoms
    have the same law whatever ``tau1``), :math:`\beta_{0i} \sim N(0, 1/4)`,
    :math:`a_i \sim N(0, I_d)`, :math:`b_i \sim N(0, 1/4)`, ``s = 1`` and
    ``c = 0``.  The draws use ``random_state`` in the order: parameters, then
    ``X``, then the noise; so a given ``params`` and seed give the same ``X``
    and noise whatever the router or expert.

    Examples
    --------
    >>> from sklearn_cosmoe.datasets import make_cosine_moe
    >>> X, y, G = make_cosine_moe(200, 2, 3, expert="tanh", random_state=0)
    >>> X.shape, y.shape, G.n_experts
    ((200, 2), (200,), 3)
    """
    _check_options(router=router, expert=expert, inputs=inputs)
    n_samples = _check_int(n_samples, "n_samples", minimum=1)
    if not (np.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite number >= 0; got {noise}.")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0; got {temperature}.")
    if router == "perturbed_cosine" and not tau1 > 0:
        raise ValueError(f"tau1 must be > 0 with router='perturbed_cosine'; got {tau1}.")
    if tau2 < 0:
        raise ValueError(f"tau2 must be >= 0; got {tau2}.")
    rng = check_random_state(random_state)

    if params is None:
        d = 2 if n_features is None else _check_int(n_features, "n_features", 1)
        k = 3 if n_experts is None else _check_int(n_experts, "n_experts", 1)
        true = _random_measure(k, d, router, tau1, expert, rng)
    else:
        true = _measure_from(params, router, tau1, expert)
        for name, given, actual in (("n_features", n_features, true.n_features),
                                    ("n_experts", n_experts, true.n_experts)):
            if given is not None and given != actual:
                raise ValueError(
                    f"{name}={given} does not match params, which has {actual}."
                )
    if top_k is not None:
        top_k = _check_int(top_k, "top_k", minimum=1)

    d = true.n_features
    if inputs == "uniform":
        X = rng.uniform(-1.0, 1.0, size=(n_samples, d))
    else:
        X = rng.standard_normal((n_samples, d))
    spec = MoESpec(router=router, expert=expert, tau1=tau1, tau2=tau2,
                   temperature=temperature, top_k=top_k)
    f = predict(X, true.to_params(), spec)
    y = f + noise * rng.standard_normal(n_samples)
    return X, y, true


def _random_measure(k, d, router, tau1, expert, rng):
    scale = 2.0 * (tau1 if router == "perturbed_cosine" else 1.0)
    return MixingMeasure(
        scale * rng.standard_normal((k, d)), 0.5 * rng.standard_normal(k),
        rng.standard_normal((k, d)), 0.5 * rng.standard_normal(k),
        router=router, tau1=tau1, expert=expert,
    )


def _measure_from(params, router, tau1, expert):
    if isinstance(params, MixingMeasure):
        mismatch = [
            f"{name}={getattr(params, name)!r} (argument: {value!r})"
            for name, value in (("router", router), ("expert", expert))
            if getattr(params, name) != value
        ]
        if router == "perturbed_cosine" and params.tau1 != float(tau1):
            mismatch.append(f"tau1={params.tau1!r} (argument: {tau1!r})")
        if mismatch:
            raise ValueError(
                "params must match the router, tau1 and expert arguments; it has "
                + ", ".join(mismatch) + "."
            )
        return MixingMeasure(
            params.gate_coef, params.gate_intercept, params.expert_coef,
            params.expert_intercept, router=router, tau1=tau1, expert=expert,
            output_scale=params.output_scale,
            output_intercept=params.output_intercept,
        )
    if isinstance(params, Mapping):
        missing = [key for key in _PARAM_KEYS if key not in params]
        extra = set(params) - set(_PARAM_KEYS) - {"output_scale", "output_intercept"}
        if missing or extra:
            raise ValueError(
                f"params must hold the keys {_PARAM_KEYS} (and optionally "
                f"'output_scale', 'output_intercept'); missing {missing}, "
                f"unknown {sorted(extra)}."
            )
        return MixingMeasure(**params, router=router, tau1=tau1, expert=expert)
    raise ValueError(
        f"params must be None, a MixingMeasure or a dict; got {type(params).__name__}."
    )


def _check_options(**options):
    allowed = {"router": ROUTERS, "expert": EXPERTS, "inputs": _INPUTS}
    for name, value in options.items():
        if value not in allowed[name]:
            raise ValueError(
                f"{name} must be one of {sorted(allowed[name])}; got {value!r}."
            )


def _check_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    return int(value)
