r"""The convergence-rate experiment: how fast least squares recovers a mixture.

For each router, expert family and setting (exactly specified, ``k = k*``;
over-specified, ``k = k* + 1``) and each sample size ``n`` of a geometric
grid, the experiment draws ``n`` rows from a fixed true mixture
(:func:`true_measure`, :func:`sklearn_cosmoe.datasets.make_cosine_moe`),
fits it by least squares and records

* the Voronoi losses :math:`D_1` and :math:`D_2` to the truth
  (:func:`sklearn_cosmoe.metrics.voronoi_loss`, on canonical forms);
* the :math:`L^2(\mu)` error of the regression function,
  :math:`\bigl(\frac{1}{m}\sum_{t=1}^{m} (f_{\hat G}(x_t) - f_{G^*}(x_t))^2\bigr)^{1/2}`
  on a fresh sample of ``m`` inputs (the same for every fit).

Two starts, reported separately:

* ``"truth"``: the theory's object of study, the least-squares estimator
  near the truth.  The start is the true measure, with its first atom split
  into two equal halves (gate intercepts :math:`\beta_{01} - \log 2`) when
  ``k = k* + 1``, plus independent :math:`N(0, \delta^2)` noise on every
  parameter; the solver
  (:func:`sklearn_cosmoe._solver.fit_least_squares`) is called directly with
  ``alpha = 0``.  Feed-forward experts start with output scale 1 and
  intercept 0, and learn them.
* ``"estimator"``: :class:`~sklearn_cosmoe.CosineMoERegressor` with its own
  data-driven initialisation (``alpha = 0``, same ``max_iter`` and ``tol``).

The slope of each error against ``n`` is the least-squares slope of the mean
over replicates of :math:`\log(\text{error})` against :math:`\log n`; its 95%
interval is a percentile bootstrap that resamples the replicates within each
``n``.  Every fit is seeded from ``(seed, n, replicate)`` only, so the
results do not depend on ``n_jobs`` or on the order of the fits, and all
settings see the same inputs and noise (common random numbers).

Run it with ``python -m sklearn_cosmoe rates`` (see :func:`main`).
"""

import argparse
import csv
import json
import math
import sys
import time
import warnings
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numba
import numpy as np
from joblib import Parallel, delayed
from sklearn.exceptions import ConvergenceWarning

from ._estimator import CosineMoERegressor
from ._model import MoESpec, predict
from ._solver import fit_least_squares
from .datasets import make_cosine_moe
from .metrics import voronoi_loss
from .mixing import MixingMeasure

#: The true mixture (d = 2, k* = 2), the same for every router and expert.
TRUE_GATE_COEF = np.array([[2.0, 1.0], [-1.0, -2.0]])
TRUE_GATE_INTERCEPT = np.array([0.0, 0.3])
TRUE_EXPERT_COEF = np.array([[1.5, -1.0], [-0.5, 2.0]])
TRUE_EXPERT_INTERCEPT = np.array([0.5, -0.3])

METRICS = ("D1", "D2", "L2")
SETTINGS = ("exact", "over")
INITS = ("truth", "estimator")

_CSV_FIELDS = ("router", "expert", "setting", "init", "n", "replicate", "k_true",
               "k", "D1", "D2", "L2", "loss", "n_iter", "converged",
               "output_scale", "output_intercept")


@dataclass(frozen=True)
class Protocol:
    """Everything that defines a run of the experiment (the defaults: doc/rates.md).

    Parameters
    ----------
    n_grid : tuple of int
        Sample sizes: 8 geometric sizes from 1e3 to 1e5.
    n_replicates : int, default=20
        Fits per sample size and setting from the near-truth start.
    estimator_replicates : int or None, default=10
        Fits per sample size and setting from the estimator's own start
        (None: as ``n_replicates``).
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
    tau1 : float, default=1.0
        Perturbation of the gate norms (perturbed cosine router).
    tau2 : float, default=1.0
        Perturbation of the input norms (perturbed cosine router).
    temperature : float, default=0.25
        Router temperature, for the truth and the fits.  With ``T = 1`` the
        gates of the truth stay within [0.26, 0.62] and ``n <= 1e5`` is
        pre-asymptotic for linear experts (doc/rates.md).
    init_scale : float, default=0.1
        :math:`\\delta`, the standard deviation of the noise added to every
        parameter of the near-truth start.
    max_iter : int, default=200
        L-BFGS iteration cap per fit.
    tol : float, default=1e-11
        Solver tolerance (L-BFGS-B ``ftol`` and ``gtol``).  The objective is
        about :math:`\\sigma^2/2` and its excess at the estimator about
        :math:`\\|f_{\\hat G} - f_{G^*}\\|^2/2`, of order ``1e-7`` at
        ``n = 1e5``: ``tol`` must be far below that.  Over-specified fits are
        flatter still (doc/rates.md, investigation 2).
    n_test : int, default=20000
        Size of the fresh sample for the :math:`L^2` error.
    seed : int, default=0
        Seeds every fit, with the sample size and the replicate.
    """

    n_grid: tuple = tuple(int(round(n)) for n in np.geomspace(1e3, 1e5, 8))
    n_replicates: int = 20
    estimator_replicates: int | None = 10
    routers: tuple = ("cosine", "perturbed_cosine")
    experts: tuple = ("tanh", "linear")
    settings: tuple = SETTINGS
    inits: tuple = INITS
    noise: float = 0.1
    tau1: float = 1.0
    tau2: float = 1.0
    temperature: float = 0.25
    init_scale: float = 0.1
    max_iter: int = 200
    tol: float = 1e-11
    n_test: int = 20_000
    seed: int = 0

    def replicates(self, init):
        """Number of replicates for a start ``init``."""
        if init == "estimator" and self.estimator_replicates is not None:
            return self.estimator_replicates
        return self.n_replicates


#: ``--quick``: every router, expert, setting and start on a small grid.
QUICK = Protocol(n_grid=(200, 400, 800, 1600), n_replicates=3,
                 estimator_replicates=None, max_iter=60, n_test=2000)


def true_measure(router, expert, tau1=1.0):
    """The experiment's true mixing measure :math:`G^*` (d = 2, k* = 2).

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


@dataclass(frozen=True)
class _Task:
    router: str
    expert: str
    setting: str
    init: str
    n: int
    replicate: int


def _seed(protocol, *keys):
    return np.random.SeedSequence([protocol.seed, *keys])


def _test_inputs(protocol):
    rng = np.random.default_rng(_seed(protocol, 0, 0, 1))
    return rng.uniform(-1.0, 1.0, size=(protocol.n_test, TRUE_GATE_COEF.shape[1]))


def _fit_one(protocol, task):
    """One fit; returns a CSV row (a dict).  Runs numba on one thread."""
    threads = numba.get_num_threads()
    numba.set_num_threads(1)  # the parallelism is across fits
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        row = _fit_one_serial(protocol, task)
        # what the CSV holds, so that slopes from memory and from the file agree
        row = {key: float(f"{value:.10g}") if isinstance(value, float) else value
               for key, value in row.items()}
    finally:
        numba.set_num_threads(threads)
    # timings are not written to the CSV (it must not depend on the machine)
    row["seconds"] = time.perf_counter() - start
    row["cpu_seconds"] = time.process_time() - cpu_start
    return row


def _fit_one_serial(protocol, task):
    p = protocol
    true = true_measure(task.router, task.expert, p.tau1)
    k_true = true.n_experts
    k = k_true + (task.setting == "over")
    spec = MoESpec(router=task.router, expert=task.expert, tau1=p.tau1, tau2=p.tau2,
                   temperature=p.temperature, alpha=0.0)
    n_index = p.n_grid.index(task.n) + 1
    data_seed = int(_seed(p, n_index, task.replicate).generate_state(1)[0])
    X, y, _ = make_cosine_moe(
        task.n, router=task.router, tau1=p.tau1, tau2=p.tau2,
        temperature=p.temperature, expert=task.expert, noise=p.noise,
        params=true, random_state=data_seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if task.init == "truth":
            rng = np.random.default_rng(_seed(p, n_index, task.replicate, 2))
            start = near_truth_start(true, k, p.init_scale, rng)
            params, loss, n_iter, converged = fit_least_squares(
                X, y, np.ones(task.n), start, spec, max_iter=p.max_iter, tol=p.tol)
            fitted = MixingMeasure.from_params(params, spec)
        else:
            est = CosineMoERegressor(
                n_experts=k, router=task.router, tau1=p.tau1, tau2=p.tau2,
                temperature=p.temperature, expert=task.expert, alpha=0.0,
                max_iter=p.max_iter, tol=p.tol,
                random_state=int(_seed(p, n_index, task.replicate, 3).generate_state(1)[0]),
            ).fit(X, y)
            fitted = MixingMeasure.from_estimator(est)
            params, n_iter, converged = fitted.to_params(), est.n_iter_, est.converged_
            loss = float(np.mean((y - est.predict(X)) ** 2) / 2)
    X_test = _test_inputs(p)
    error = predict(X_test, params, spec) - predict(X_test, true.to_params(), spec)
    return {
        **asdict(task), "k_true": k_true, "k": k,
        "D1": voronoi_loss(fitted, true, "D1"), "D2": voronoi_loss(fitted, true, "D2"),
        "L2": float(np.sqrt(np.mean(error ** 2))), "loss": float(loss),
        "n_iter": int(n_iter), "converged": bool(converged),
        "output_scale": fitted.output_scale, "output_intercept": fitted.output_intercept,
    }


def run_experiment(protocol, n_jobs=1, progress=True):
    """Run every fit of ``protocol``.

    Parameters
    ----------
    protocol : Protocol
        What to run.
    n_jobs : int, default=1
        Number of joblib processes (each fit runs numba on one thread).
    progress : bool, default=True
        Report progress on stderr.

    Returns
    -------
    list of dict
        One row per fit (the CSV columns), in a fixed order.
    """
    tasks = [
        _Task(router, expert, setting, init, n, rep)
        for router in protocol.routers for expert in protocol.experts
        for setting in protocol.settings for init in protocol.inits
        for n in protocol.n_grid for rep in range(protocol.replicates(init))
    ]
    # largest fits first: better balance between the workers
    order = sorted(range(len(tasks)), key=lambda i: -tasks[i].n)
    jobs = (delayed(_fit_one)(protocol, tasks[i]) for i in order)
    results = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(jobs)
    rows, start, last = [], time.perf_counter(), -1
    for row in results:
        rows.append(row)
        done = 10 * len(rows) // len(tasks)
        if progress and done > last:
            last = done
            elapsed = time.perf_counter() - start
            print(f"[rates] {len(rows)}/{len(tasks)} fits, {elapsed:.0f} s",
                  file=sys.stderr, flush=True)
    position = {task: i for i, task in enumerate(tasks)}
    rows.sort(key=lambda r: position[_Task(*(r[f.name] for f in fields(_Task)))])
    return rows


def fit_slope(n, values, n_boot=2000, seed=0):
    r"""Least-squares slope of :math:`\log` error against :math:`\log n`, with a 95% interval.

    The slope is that of the line through the points
    :math:`(\log n, \overline{\log \text{error}})` (mean over the replicates
    at each ``n``); the interval is the 2.5 and 97.5 percentiles of the slope
    over ``n_boot`` bootstrap samples that resample the replicates within each
    ``n``.  Errors that are not finite and positive are left out.

    Parameters
    ----------
    n : array-like of shape (n_fits,)
        Sample size of each fit.
    values : array-like of shape (n_fits,)
        Error of each fit.
    n_boot : int, default=2000
        Number of bootstrap samples.
    seed : int, default=0
        Seeds the bootstrap.

    Returns
    -------
    slope : float
        NaN with fewer than two sample sizes.
    low : float
        Lower end of the 95% interval.
    high : float
        Upper end of the 95% interval.
    """
    n = np.asarray(n, dtype=float)
    values = np.asarray(values, dtype=float)
    keep = np.isfinite(values) & (values > 0)
    sizes = np.unique(n[keep])
    if sizes.size < 2:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    logn = np.log(sizes)
    means = np.empty(sizes.size)
    boot = np.empty((n_boot, sizes.size))
    for j, size in enumerate(sizes):
        logs = np.log(values[keep & (n == size)])
        means[j] = logs.mean()
        boot[:, j] = logs[rng.integers(0, logs.size, (n_boot, logs.size))].mean(1)
    centred = logn - logn.mean()
    slope = centred @ means / (centred @ centred)
    boot_slopes = boot @ centred / (centred @ centred)
    low, high = np.percentile(boot_slopes, [2.5, 97.5])
    return float(slope), float(low), float(high)


def theory_slope(router, expert, setting, metric):
    """What model.md section 5 predicts for a slope.

    Parameters
    ----------
    router : str
        Router of the setting.
    expert : str
        Expert family of the setting.
    setting : {"exact", "over"}
        Exactly or over-specified.
    metric : {"D1", "D2", "L2"}
        The error.

    Returns
    -------
    value : float or None
        The predicted slope; None where the theory gives no polynomial rate.
    note : str
        Where it comes from, in a few words.
    """
    if metric == "L2":
        return -0.5, "sqrt(log n / n), every router"
    if router == "perturbed_cosine" and expert != "linear":
        if setting == "over" and metric == "D1":
            return -0.25, "split atoms at n^-1/4"
        return -0.5, "strongly identifiable experts"
    if router == "cosine":
        return None, "as slow as 1/log^tau n"
    return None, "not strongly identifiable: no polynomial rate proved"


def summarise(rows, protocol, n_boot=2000):
    """Fit the slopes: one row per setting and metric.

    Parameters
    ----------
    rows : list of dict
        Fits, as returned by :func:`run_experiment`.
    protocol : Protocol
        The protocol that produced them (it orders the table).
    n_boot : int, default=2000
        Bootstrap samples per slope (:func:`fit_slope`).

    Returns
    -------
    list of dict
        Keys ``router, expert, setting, init, metric, slope, ci_low,
        ci_high, theory`` (empty string where the theory gives no rate),
        ``theory_note`` and ``converged`` (share of fits that met the
        tolerance).
    """
    table = []
    for router in protocol.routers:
        for expert in protocol.experts:
            for setting in protocol.settings:
                for init in protocol.inits:
                    group = [r for r in rows if (r["router"], r["expert"], r["setting"],
                                                 r["init"]) == (router, expert, setting, init)]
                    if not group:
                        continue
                    n = [r["n"] for r in group]
                    for metric in METRICS:
                        slope, low, high = fit_slope(
                            n, [r[metric] for r in group], n_boot, protocol.seed)
                        theory, note = theory_slope(router, expert, setting, metric)
                        table.append({
                            "router": router, "expert": expert, "setting": setting,
                            "init": init, "metric": metric, "slope": slope,
                            "ci_low": low, "ci_high": high,
                            "theory": "" if theory is None else theory,
                            "theory_note": note,
                            "converged": float(np.mean([r["converged"] for r in group])),
                        })
    return table


def read_csv(path):
    """Read a ``rates.csv`` written by :func:`main`.

    Parameters
    ----------
    path : str or pathlib.Path
        The file.

    Returns
    -------
    list of dict
        One row per fit, with numbers and flags as Python numbers and bools.
    """
    types = {"n": int, "replicate": int, "k_true": int, "k": int, "n_iter": int,
             "converged": lambda v: v == "True"}
    with open(path, newline="") as handle:
        return [{key: types.get(key, float)(value) if key not in
                 ("router", "expert", "setting", "init") else value
                 for key, value in row.items()} for row in csv.DictReader(handle)]


def write_csv(rows, path, columns=None):
    """Write rows to a CSV file, floats with 10 significant digits.

    Parameters
    ----------
    rows : list of dict
        The rows; keys not in ``columns`` are left out.
    path : str or pathlib.Path
        The file (overwritten).
    columns : list of str, default=None
        Columns, in order; the keys of the first row when None.
    """
    columns = columns or list(rows[0])
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: f"{value:.10g}" if isinstance(value, float) else value
                             for key, value in row.items()})


def plot(rows, table, protocol, out_dir):
    """One log-log figure per start, one panel per (expert, router, setting).

    Each panel shows the mean over replicates of :math:`\\log` D1, D2 and L2
    against ``n`` (points; bars: 10-90% of the replicates), the fitted lines
    with their slope and 95% interval, and a reference line of slope -1/2.

    Parameters
    ----------
    rows : list of dict
        Fits, as returned by :func:`run_experiment`.
    table : list of dict
        Slopes, as returned by :func:`summarise`.
    protocol : Protocol
        The protocol of the fits.
    out_dir : str or pathlib.Path
        Folder for ``rates_<init>.png``.

    Returns
    -------
    list of pathlib.Path
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = [(router, setting) for router in protocol.routers
               for setting in protocol.settings]
    paths = []
    for init in protocol.inits:
        fig, axes = plt.subplots(len(protocol.experts), len(columns), squeeze=False,
                                 figsize=(max(3.6 * len(columns), 6.0),
                                          3.3 * len(protocol.experts)),
                                 sharex=True)
        for row_axes, expert in zip(axes, protocol.experts):
            for ax, (router, setting) in zip(row_axes, columns):
                _panel(ax, rows, table, router, expert, setting, init)
        fig.suptitle(f"Convergence rates, start: {init} "
                     f"({protocol.replicates(init)} replicates per n)")
        fig.tight_layout()
        path = Path(out_dir) / f"rates_{init}.png"
        fig.savefig(path, dpi=110, metadata={"Software": None})
        plt.close(fig)
        paths.append(path)
    return paths


_STYLE = {"D1": ("tab:blue", "o"), "D2": ("tab:orange", "s"), "L2": ("tab:green", "^")}


def _panel(ax, rows, table, router, expert, setting, init):
    from matplotlib.ticker import LogLocator, NullLocator

    group = [r for r in rows if (r["router"], r["expert"], r["setting"], r["init"])
             == (router, expert, setting, init)]
    sizes = np.array(sorted({r["n"] for r in group}), dtype=float)
    for metric in METRICS:
        stats = []
        for size in sizes:
            v = np.array([r[metric] for r in group if r["n"] == size])
            v = v[np.isfinite(v) & (v > 0)]
            stats.append((np.exp(np.log(v).mean()), *np.percentile(v, [10, 90]))
                         if v.size else (np.nan,) * 3)
        centre, low, high = np.array(stats).T
        fit = next(t for t in table if (t["router"], t["expert"], t["setting"],
                                         t["init"], t["metric"])
                   == (router, expert, setting, init, metric))
        label = (f"{metric}: {fit['slope']:.2f} "
                 f"[{fit['ci_low']:.2f}, {fit['ci_high']:.2f}]")
        bars = np.clip([centre - low, high - centre], 0, None)
        ax.errorbar(sizes, centre, yerr=bars, fmt=_STYLE[metric][1], ms=4,
                    mfc="none" if metric == "D2" else _STYLE[metric][0],
                    color=_STYLE[metric][0], label=label, capsize=2)
        ok = np.isfinite(centre)
        if ok.sum() >= 2 and np.isfinite(fit["slope"]):
            logn = np.log(sizes[ok])
            intercept = np.log(centre[ok]).mean() - fit["slope"] * logn.mean()
            ax.plot(sizes, np.exp(intercept + fit["slope"] * np.log(sizes)), "--",
                    color=_STYLE[metric][0], lw=1)
    reference = [r["L2"] for r in group if r["n"] == sizes[0]]
    if reference:
        anchor = 2 * np.exp(np.log(reference).mean())
        ax.plot(sizes, anchor * (sizes / sizes[0]) ** -0.5, ":", color="grey",
                lw=1, label="slope -1/2")
    ax.set_xscale("log")
    ax.set_yscale("log")
    low, high = ax.get_ylim()
    ax.set_ylim(low, high * (high / low) ** 0.7)  # room for the legend above the data
    # few ticks: matplotlib's default log ticks are slow to lay out
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(LogLocator(numticks=5))
        axis.set_minor_locator(NullLocator())
    k_true = group[0]["k_true"] if group else "?"
    k = group[0]["k"] if group else "?"
    ax.set_title(f"{router}, {expert}\n{setting}: k*={k_true}, k={k}", fontsize=9)
    ax.set_xlabel("n")
    ax.legend(fontsize=7, loc="upper right", framealpha=0.7)


def _markdown_table(table):
    lines = ["| router | expert | setting | start | metric | slope | 95% CI | theory | converged |",
             "|---|---|---|---|---|---|---|---|---|"]
    for t in table:
        theory = f"{t['theory']:g}" if t["theory"] != "" else "none"
        lines.append(
            f"| {t['router']} | {t['expert']} | {t['setting']} | {t['init']} | "
            f"{t['metric']} | {t['slope']:.2f} | [{t['ci_low']:.2f}, {t['ci_high']:.2f}] "
            f"| {theory} ({t['theory_note']}) | {t['converged']:.0%} |"
        )
    return "\n".join(lines)


def _parser():
    default = Protocol()
    parser = argparse.ArgumentParser(
        prog="python -m sklearn_cosmoe rates",
        description="Convergence-rate experiment of the cosine-router mixture of "
                    "experts: Voronoi losses D1, D2 and the L2 error of the "
                    "regression function against n, with fitted log-log slopes.",
    )
    parser.add_argument("--quick", action="store_true",
                        help="small grid and 3 replicates (under a minute)")
    parser.add_argument("--out", default="rates_results",
                        help="output folder (CSV, slopes, figures); default: %(default)s")
    parser.add_argument("--n-jobs", type=int, default=2,
                        help="parallel processes; default: %(default)s")
    parser.add_argument("--seed", type=int, default=default.seed)
    parser.add_argument("--replicates", type=int, default=None,
                        help=f"replicates per n (default {default.n_replicates})")
    parser.add_argument("--estimator-replicates", type=int, default=None,
                        help="replicates per n for the estimator's own start "
                             "(default: as --replicates)")
    parser.add_argument("--n-min", type=float, default=None)
    parser.add_argument("--n-max", type=float, default=None)
    parser.add_argument("--n-sizes", type=int, default=None,
                        help="number of geometric grid points")
    parser.add_argument("--routers", default=None,
                        help="comma-separated, e.g. cosine,perturbed_cosine,linear")
    parser.add_argument("--experts", default=None, help="comma-separated, e.g. tanh,linear")
    parser.add_argument("--settings", default=None, help="comma-separated: exact,over")
    parser.add_argument("--inits", default=None, help="comma-separated: truth,estimator")
    parser.add_argument("--noise", type=float, default=None)
    parser.add_argument("--temperature", type=float, default=None)
    parser.add_argument("--max-iter", type=int, default=None)
    parser.add_argument("--tol", type=float, default=None)
    parser.add_argument("--no-figure", action="store_true")
    parser.add_argument("--replot", action="store_true",
                        help="no fits: redo slopes and figures from the rates.csv "
                             "and protocol.json already in --out")
    return parser


def _protocol_from(args):
    protocol = QUICK if args.quick else Protocol()
    changes = {}
    if args.n_min is not None or args.n_max is not None or args.n_sizes is not None:
        low = args.n_min or min(protocol.n_grid)
        high = args.n_max or max(protocol.n_grid)
        count = args.n_sizes or len(protocol.n_grid)
        if not (0 < low < high and count >= 2):
            raise ValueError("need 0 < --n-min < --n-max and --n-sizes >= 2.")
        changes["n_grid"] = tuple(sorted({int(round(v)) for v in
                                          np.geomspace(low, high, count)}))
    for name in ("routers", "experts", "settings", "inits"):
        value = getattr(args, name)
        if value is not None:
            changes[name] = tuple(v.strip() for v in value.split(",") if v.strip())
    for arg, name in (("replicates", "n_replicates"),
                      ("estimator_replicates", "estimator_replicates"),
                      ("noise", "noise"), ("temperature", "temperature"),
                      ("max_iter", "max_iter"), ("tol", "tol"), ("seed", "seed")):
        value = getattr(args, arg)
        if value is not None:
            changes[name] = value
    protocol = replace(protocol, **changes)
    for name, allowed in (("settings", SETTINGS), ("inits", INITS)):
        bad = set(getattr(protocol, name)) - set(allowed)
        if bad:
            raise ValueError(f"--{name} must be among {allowed}; got {sorted(bad)}.")
    return protocol


def main(argv=None):
    """Command line: run the experiment, write the CSV, slopes and figures.

    Writes into ``--out``: ``rates.csv`` (one row per fit), ``slopes.csv``
    (one row per setting and metric), ``rates_truth.png`` and
    ``rates_estimator.png`` (log-log figures), ``protocol.json``; prints the
    slope table (Markdown) and the wall time.

    Parameters
    ----------
    argv : list of str, default=None
        Arguments (``sys.argv[1:]`` when None); ``--help`` lists them.

    Returns
    -------
    int
        0 on success.
    """
    args = _parser().parse_args(argv)
    out = Path(args.out)
    start = time.perf_counter()
    if args.replot:
        saved = json.loads((out / "protocol.json").read_text())
        protocol = Protocol(**{key: tuple(value) if isinstance(value, list) else value
                               for key, value in saved.items()})
        rows = read_csv(out / "rates.csv")
    else:
        protocol = _protocol_from(args)
        out.mkdir(parents=True, exist_ok=True)
        rows = run_experiment(protocol, n_jobs=args.n_jobs)
        write_csv(rows, out / "rates.csv", _CSV_FIELDS)
        (out / "protocol.json").write_text(json.dumps(asdict(protocol), indent=2) + "\n")
    table = summarise(rows, protocol)
    write_csv(table, out / "slopes.csv")
    if not args.no_figure:
        plot(rows, table, protocol, out)
    wall = time.perf_counter() - start
    print(_markdown_table(table))
    if args.replot:
        print(f"\nslopes and figures of {len(rows)} fits redone in {out}/")
    else:
        busy = sum(row["seconds"] for row in rows)
        cpu = sum(row["cpu_seconds"] for row in rows)
        print(f"\n{len(rows)} fits in {wall:.1f} s wall time (n_jobs={args.n_jobs}; "
              f"{busy:.0f} s inside the fits, of which {cpu:.0f} s on a CPU); "
              f"results in {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
