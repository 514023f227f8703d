r"""The convergence-rate experiment: how fast least squares recovers a mixture.

For each truth, router, expert family and setting (exactly specified,
``k = k*``; over-specified, ``k = k* + 1``) and each sample size ``n`` of a
geometric grid, the experiment draws ``n`` rows from the true mixture
(:func:`truth_measure`, :func:`sklearn_cosmoe.datasets.make_cosine_moe`),
fits it by least squares and records

* the Voronoi losses :math:`D_1` and :math:`D_2` to the truth on canonical
  forms (what the data determine) and on raw parameters (the paper's loss):
  :func:`sklearn_cosmoe.metrics.voronoi_loss`, user guide
  :ref:`voronoi-losses` and :ref:`raw-voronoi-loss`;
* the :math:`L^2(\mu)` error of the regression function,
  :math:`\bigl(\frac{1}{m}\sum_{t=1}^{m} (f_{\hat G}(x_t) - f_{G^*}(x_t))^2\bigr)^{1/2}`
  on a fresh sample of ``m`` inputs (the same for every fit).

Two starts, reported separately:

* ``"truth"``: the theory's object of study, the least-squares estimator
  near the truth (:func:`near_truth_start`; the solver is called directly
  with ``alpha = 0``).  Feed-forward experts start with output scale 1 and
  intercept 0, and learn them.
* ``"estimator"``: :class:`~sklearn_cosmoe.CosineMoERegressor` with its own
  data-driven initialisation (``alpha = 0``, same ``max_iter`` and ``tol``).

The slope of each error against ``n`` is the least-squares slope of the mean
over replicates of :math:`\log(\text{error})` against :math:`\log n`, with a
bootstrap 95% interval (:func:`fit_slope`), next to the theory's
(:func:`theory_slope`).  A *study* (``STUDIES``) is a tuple of
:class:`Protocol` parts; ``main`` is the hand-picked truth with both starts
plus a family of random truths.

The subpackage is layered: ``_protocol`` (what to run), ``_running`` (the
fits), ``_reporting`` (slopes and tables), ``_figures`` and ``_cli`` (the
command ``python -m sklearn_cosmoe rates``, see :func:`main`).
"""

from ._cli import git_state, main
from ._figures import plot
from ._protocol import (FAMILY, INITS, METRICS, SETTINGS, STUDIES, Protocol,
                        near_truth_start, quick, theory_slope, true_measure,
                        truth_measure)
from ._reporting import (estimator_against_truth, family_summary, fit_slope,
                         markdown_tables, read_csv, summarise, write_csv)
from ._running import describe_fit, run_experiment

#: ``--quick``'s version of the main truth's part.
QUICK = quick(Protocol())

__all__ = [
    "FAMILY", "INITS", "METRICS", "QUICK", "SETTINGS", "STUDIES", "Protocol",
    "describe_fit", "estimator_against_truth", "family_summary", "fit_slope",
    "git_state", "main", "markdown_tables", "near_truth_start", "plot", "quick",
    "read_csv", "run_experiment", "summarise", "theory_slope", "true_measure",
    "truth_measure", "write_csv",
]
