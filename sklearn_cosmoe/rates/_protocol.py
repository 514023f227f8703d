"""What a run of the experiment is: the truths, the protocol, the studies, the theory."""

import math
import re
from dataclasses import dataclass, replace

import numpy as np

from ..datasets import make_cosine_moe
from ..mixing import MixingMeasure

#: The hand-picked true mixture (d = 2, k* = 2), the same for every router and expert.
TRUE_GATE_COEF = np.array([[2.0, 1.0], [-1.0, -2.0]])
TRUE_GATE_INTERCEPT = np.array([0.0, 0.3])
TRUE_EXPERT_COEF = np.array([[1.5, -1.0], [-0.5, 2.0]])
TRUE_EXPERT_INTERCEPT = np.array([0.5, -0.3])

#: Random truths of the main run: ``d-k-s`` is ``make_cosine_moe(n_features=d,
#: n_experts=k, random_state=s)``'s true measure.
FAMILY = tuple(f"d{d}-k{k}-s{s}" for d in (2, 5) for k in (2, 3) for s in (1, 2))

#: Errors per fit: canonical and raw Voronoi losses, L2 error of the regression function.
METRICS = ("D1", "D2", "D1_raw", "D2_raw", "L2")
SETTINGS = ("exact", "over")
INITS = ("truth", "estimator")

_RANDOM_TRUTH = re.compile(r"^d(\d+)-k(\d+)-s(\d+)$")


@dataclass(frozen=True)
class Protocol:
    """Everything that defines one part of a run (the defaults: doc/rates.md).

    Parameters
    ----------
    n_grid : tuple of int
        Sample sizes: 8 geometric sizes from 1e3 to 1e5.
    n_replicates : int, default=20
        Fits per truth, sample size and setting from the near-truth start.
    estimator_replicates : int or None, default=10
        Fits per truth, sample size and setting from the estimator's own
        start (None: as ``n_replicates``).
    truths : tuple of str, default=("main",)
        ``"main"``: :func:`true_measure`; ``"d<d>-k<k>-s<seed>"``: a random
        truth of :func:`~sklearn_cosmoe.datasets.make_cosine_moe`
        (:func:`truth_measure`).
    routers : tuple of str, default=("cosine", "perturbed_cosine")
        Routers, of the truth and of the fits.
    experts : tuple of str, default=("tanh", "linear")
        Expert families, of the truth and of the fits.
    settings : tuple of str, default=("exact", "over")
        ``"exact"``: ``k = k*``; ``"over"``: ``k = k* + 1``.
    inits : tuple of str, default=("truth", "estimator")
        Starts: near the truth, or the estimator's own.
    noise : float, default=0.1
        Standard deviation of the Gaussian noise.
    tau1, tau2 : float, default=1.0
        Perturbations of the perturbed cosine router.
    temperature : float, default=0.25
        Router temperature, for the truth and the fits.  With ``T = 1`` the
        gates of the main truth stay within [0.26, 0.62] and ``n <= 1e5`` is
        pre-asymptotic for linear experts (doc/rates.md, study
        ``temperature``).
    init_scale : float, default=0.1
        :math:`\\delta`, the standard deviation of the noise added to every
        parameter of the near-truth start.
    max_iter : int, default=1000
        Iteration cap per fit (the estimator's default): Newton-type fits of
        over-specified linear experts, whose optimum is singular, converge
        only linearly and took more than 200 in about one case in ten.
    tol : float, default=1e-11
        Relative solver tolerance (user guide :ref:`solver`): a Newton-type
        fit stops when its model promises a decrease of at most ``tol`` times
        the objective, an L-BFGS-B fit when an iteration lowers the objective
        by at most that.  The excess objective at the estimator is of order ``1e-7``
        at ``n = 1e5``, so ``tol`` times the objective must be far below
        that.
    n_test : int, default=20000
        Size of the fresh sample for the :math:`L^2` error.
    seed : int, default=0
        Seeds every fit, with the truth, the sample size and the replicate.
    """

    n_grid: tuple = tuple(int(round(n)) for n in np.geomspace(1e3, 1e5, 8))
    n_replicates: int = 20
    estimator_replicates: int | None = 10
    truths: tuple = ("main",)
    routers: tuple = ("cosine", "perturbed_cosine")
    experts: tuple = ("tanh", "linear")
    settings: tuple = SETTINGS
    inits: tuple = INITS
    noise: float = 0.1
    tau1: float = 1.0
    tau2: float = 1.0
    temperature: float = 0.25
    init_scale: float = 0.1
    max_iter: int = 1000
    tol: float = 1e-11
    n_test: int = 20_000
    seed: int = 0

    def replicates(self, init):
        """Number of replicates for a start ``init``."""
        if init == "estimator" and self.estimator_replicates is not None:
            return self.estimator_replicates
        return self.n_replicates


_FAMILY_PART = Protocol(n_grid=(1000, 3162, 10000, 31623), n_replicates=3,
                        truths=FAMILY, inits=("truth",))

#: The named runs ("studies") of ``python -m sklearn_cosmoe rates --study``:
#: each is a tuple of parts, run one after the other into one output folder.
STUDIES = {
    # every router, expert, setting and start on the main truth; the family of
    # random truths from the near-truth start on a shorter grid
    "main": (Protocol(), _FAMILY_PART),
    # the over-specified tanh fits of the main truth run much longer
    "long": (Protocol(routers=("perturbed_cosine",), experts=("tanh",),
                      settings=("over",), inits=("truth",), n_replicates=4,
                      tol=1e-15, max_iter=3000),),
    # temperature 1 (the paper's), fits run to convergence, exactly specified
    # linear experts; its control is the same study with --temperature 0.25
    "temperature": (Protocol(n_grid=(1000, 3162, 10000, 31623, 100000),
                             n_replicates=4, routers=("perturbed_cosine",),
                             experts=("linear",), settings=("exact",),
                             inits=("truth",), temperature=1.0, tol=1e-15,
                             max_iter=2000),),
}


def quick(protocol):
    """The ``--quick`` version of a part: 4 small sizes (2 for a family), few replicates."""
    family = protocol.truths != ("main",)
    return replace(
        protocol,
        n_grid=(200, 800) if family else (200, 400, 800, 1600),
        n_replicates=1 if family else min(protocol.n_replicates, 3),
        estimator_replicates=None,
        truths=tuple(t for t in protocol.truths if t == "main" or t.endswith("-s1")),
        max_iter=min(protocol.max_iter, 200), n_test=2000,
    )


def true_measure(router, expert, tau1=1.0):
    """The experiment's hand-picked true mixing measure :math:`G^*` (d = 2, k* = 2).

    Parameters
    ----------
    router : {"cosine", "perturbed_cosine", "linear"}
        Router of the measure.
    expert : {"tanh", "linear", "sigmoid", "gelu"}
        Expert family of the measure.
    tau1 : float, default=1.0
        Perturbation of the gate norms (perturbed cosine router).

    Returns
    -------
    MixingMeasure
        ``s = 1``, ``c = 0``; the arrays are the module constants
        ``TRUE_*``.
    """
    return MixingMeasure(TRUE_GATE_COEF, TRUE_GATE_INTERCEPT, TRUE_EXPERT_COEF,
                         TRUE_EXPERT_INTERCEPT, router=router, tau1=tau1,
                         expert=expert)


def truth_measure(truth, router, expert, tau1=1.0):
    """A truth of the experiment by name.

    Parameters
    ----------
    truth : str
        ``"main"`` (:func:`true_measure`) or ``"d<d>-k<k>-s<seed>"``: the
        random true measure that
        ``make_cosine_moe(n_features=d, n_experts=k, random_state=seed)``
        draws (its gate arrays do not depend on the router for ``tau1 = 1``).
    router, expert : str
        As in :func:`true_measure`.
    tau1 : float, default=1.0

    Returns
    -------
    MixingMeasure
    """
    if truth == "main":
        return true_measure(router, expert, tau1)
    match = _RANDOM_TRUTH.match(truth)
    if match is None:
        raise ValueError(
            f"truth must be 'main' or 'd<d>-k<k>-s<seed>' (e.g. 'd5-k3-s1'); got {truth!r}."
        )
    d, k, seed = map(int, match.groups())
    return make_cosine_moe(1, d, k, router=router, tau1=tau1, expert=expert,
                           random_state=seed)[2]


def near_truth_start(true, n_experts, scale, rng):
    r"""The near-truth start: split the first true atom, then perturb.

    With ``m = n_experts - k* + 1`` copies of the first atom, each copy gets
    gate intercept :math:`\beta_{01} - \log m` (the copies together keep the
    atom's weight); then :math:`N(0, \text{scale}^2)` noise is added to every
    gate and expert parameter (never to the output scale and intercept).

    Parameters
    ----------
    true : MixingMeasure
        The true measure, with ``k*`` atoms.
    n_experts : int
        ``k >= k*``.
    scale : float
        Standard deviation of the noise added to every parameter.
    rng : numpy.random.Generator
        Source of that noise.

    Returns
    -------
    MoEParams
    """
    m = n_experts - true.n_experts + 1
    if m < 1:
        raise ValueError(
            f"n_experts must be >= the true number of experts {true.n_experts}; "
            f"got {n_experts}."
        )
    params = true.to_params()
    take = np.r_[np.zeros(m - 1, dtype=int), np.arange(true.n_experts)]
    params.gate_coef = params.gate_coef[take]
    params.gate_intercept = params.gate_intercept[take]
    params.gate_intercept[:m] -= math.log(m)
    params.expert_coef = params.expert_coef[take]
    params.expert_intercept = params.expert_intercept[take]
    for name in ("gate_coef", "gate_intercept", "expert_coef", "expert_intercept"):
        value = getattr(params, name)
        setattr(params, name, value + scale * rng.standard_normal(value.shape))
    return params


def theory_slope(router, expert, setting, metric):
    """What the theory predicts for a slope (user guide: :ref:`theory-predictions`).

    The theory's losses are on the raw parameters (``D1_raw``, ``D2_raw``).
    The canonical losses (``D1``, ``D2``) share their predictions under the
    perturbed cosine router, where raw and canonical gate atoms are in smooth
    bijection; under the cosine router the theory's slow rate lives in the
    length of :math:`\\beta_{1i}`, which the canonical form leaves out, and it
    predicts nothing for them.

    Parameters
    ----------
    router : str
        Router of the setting.
    expert : str
        Expert family of the setting.
    setting : {"exact", "over"}
        Exactly or over-specified.
    metric : {"D1", "D2", "D1_raw", "D2_raw", "L2"}
        The error.

    Returns
    -------
    value : float or None
        The predicted slope; None where the theory gives no polynomial rate.
    note : str
        Where it comes from, in a few words.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}; got {metric!r}.")
    if metric == "L2":
        return -0.5, "sqrt(log n / n), every router"
    if router == "perturbed_cosine" and expert != "linear":
        if setting == "over" and metric.startswith("D1"):
            return -0.25, "split atoms at n^-1/4"
        return -0.5, "strongly identifiable experts"
    if router == "cosine":
        if metric.endswith("raw"):
            return None, "as slow as 1/log^tau n"
        return None, "no prediction on direction-only atoms"
    return None, "not strongly identifiable: no polynomial rate proved"
