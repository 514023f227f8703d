"""Running the fits of a protocol: one row of errors per fit."""

import sys
import time
import warnings
import zlib
from dataclasses import asdict, dataclass, fields

import numpy as np
from joblib import Parallel, delayed
from sklearn.exceptions import ConvergenceWarning

from .._estimator import CosineMoERegressor
from .._model import MoESpec, predict
from .._objective import ArrayObjective
from .._solver import fit_least_squares
from ..datasets import make_cosine_moe
from ..metrics import voronoi_loss
from ..mixing import MixingMeasure
from ._protocol import near_truth_start, truth_measure

#: The columns of ``rates.csv``, in order.
CSV_FIELDS = ("truth", "router", "expert", "setting", "init", "n", "replicate",
              "d", "k_true", "k", "D1", "D2", "D1_raw", "D2_raw", "L2", "loss",
              "n_iter", "converged", "gate_norm_change", "output_scale",
              "output_intercept")


@dataclass(frozen=True)
class _Task:
    truth: str
    router: str
    expert: str
    setting: str
    init: str
    n: int
    replicate: int


def tasks(protocol):
    """Every fit of ``protocol``, in the order of the CSV."""
    return [
        _Task(truth, router, expert, setting, init, n, rep)
        for truth in protocol.truths for router in protocol.routers
        for expert in protocol.experts for setting in protocol.settings
        for init in protocol.inits for n in protocol.n_grid
        for rep in range(protocol.replicates(init))
    ]


def _seed(protocol, truth, *keys):
    # the main truth keeps the keys of the first runs (same data as before)
    # (zlib.crc32: a stable number for a string; Python's hash() is salted)
    extra = () if truth == "main" else (zlib.crc32(truth.encode()),)
    return np.random.SeedSequence([protocol.seed, *keys, *extra])


def _test_inputs(protocol, d):
    rng = np.random.default_rng(np.random.SeedSequence([protocol.seed, 0, 0, 1]))
    return rng.uniform(-1.0, 1.0, size=(protocol.n_test, d))


def _fit_one(protocol, task):
    """One fit; returns a CSV row (a dict).

    In joblib's worker processes the package's kernels follow the inner
    thread limit that joblib sets, so parallel fits do not oversubscribe.
    """
    start, cpu_start = time.perf_counter(), time.process_time()
    row = fit_one(protocol, task)[0]
    # what the CSV holds, so that slopes from memory and from the file agree
    row = {key: float(f"{value:.10g}") if isinstance(value, float) else value
           for key, value in row.items()}
    # timings are not written to the CSV (it must not depend on the machine)
    row["seconds"] = time.perf_counter() - start
    row["cpu_seconds"] = time.process_time() - cpu_start
    return row


def fit_one(protocol, task):
    """Fit one task; return its CSV row, the fitted and the true measures.

    Parameters
    ----------
    protocol : Protocol
    task : _Task
        Truth, router, expert, setting, start, ``n`` and replicate.

    Returns
    -------
    row : dict
    fitted : MixingMeasure
    true : MixingMeasure
    """
    p = protocol
    true = truth_measure(task.truth, task.router, task.expert, p.tau1)
    k_true, d = true.n_experts, true.n_features
    k = k_true + (task.setting == "over")
    spec = MoESpec(router=task.router, expert=task.expert, tau1=p.tau1, tau2=p.tau2,
                   temperature=p.temperature, alpha=0.0)
    n_index = p.n_grid.index(task.n) + 1
    data_seed = int(_seed(p, task.truth, n_index, task.replicate).generate_state(1)[0])
    X, y, _ = make_cosine_moe(
        task.n, router=task.router, tau1=p.tau1, tau2=p.tau2,
        temperature=p.temperature, expert=task.expert, noise=p.noise,
        params=true, random_state=data_seed,
    )
    norm_change = float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if task.init == "truth":
            rng = np.random.default_rng(_seed(p, task.truth, n_index, task.replicate, 2))
            start = near_truth_start(true, k, p.init_scale, rng)
            params, loss, n_iter, converged = fit_least_squares(
                ArrayObjective(X, y, np.ones(task.n)), start, spec, max_iter=p.max_iter,
                tol=p.tol)
            fitted = MixingMeasure.from_params(params, spec)
            before = np.linalg.norm(start.gate_coef, axis=1)
            after = np.linalg.norm(params.gate_coef, axis=1)
            norm_change = float(np.max(np.abs(after / before - 1)))
        else:
            seed = int(_seed(p, task.truth, n_index, task.replicate, 3).generate_state(1)[0])
            est = CosineMoERegressor(
                n_experts=k, router=task.router, tau1=p.tau1, tau2=p.tau2,
                temperature=p.temperature, expert=task.expert, alpha=0.0,
                max_iter=p.max_iter, tol=p.tol, random_state=seed,
            ).fit(X, y)
            fitted = MixingMeasure.from_estimator(est)
            params, n_iter, converged = fitted.to_params(), est.n_iter_, est.converged_
            loss = float(np.mean((y - est.predict(X)) ** 2) / 2)
    X_test = _test_inputs(p, d)
    error = predict(X_test, params, spec) - predict(X_test, true.to_params(), spec)
    row = {
        **asdict(task), "d": d, "k_true": k_true, "k": k,
        **{f"{kind}{suffix}": voronoi_loss(fitted, true, kind, form=form)
           for form, suffix in (("canonical", ""), ("raw", "_raw"))
           for kind in ("D1", "D2")},
        "L2": float(np.sqrt(np.mean(error ** 2))), "loss": float(loss),
        "n_iter": int(n_iter), "converged": bool(converged),
        "gate_norm_change": norm_change,
        "output_scale": fitted.output_scale, "output_intercept": fitted.output_intercept,
    }
    return row, fitted, true


def run_experiment(protocol, n_jobs=1, progress=True):
    """Run every fit of ``protocol``.

    Every fit is seeded from ``(seed, n, replicate)`` (and the truth's name
    for a random truth) only, so the rows do not depend on ``n_jobs`` or on
    the order of the fits, and all routers, experts, settings and starts see
    the same inputs and noise (common random numbers).

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
        One row per fit (the CSV columns, and its ``seconds`` and
        ``cpu_seconds``), in a fixed order.
    """
    todo = tasks(protocol)
    # largest fits first: better balance between the workers
    order = sorted(range(len(todo)), key=lambda i: -todo[i].n)
    jobs = (delayed(_fit_one)(protocol, todo[i]) for i in order)
    results = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(jobs)
    rows, start, last = [], time.perf_counter(), -1
    for row in results:
        rows.append(row)
        done = 10 * len(rows) // len(todo)
        if progress and done > last:
            last = done
            elapsed = time.perf_counter() - start
            print(f"[rates] {len(rows)}/{len(todo)} fits, {elapsed:.0f} s",
                  file=sys.stderr, flush=True)
    position = {task: i for i, task in enumerate(todo)}
    rows.sort(key=lambda r: position[_Task(*(r[f.name] for f in fields(_Task)))])
    return rows


def describe_fit(protocol, task):
    """A fit's atoms beside the truth's, as text (``rates inspect``).

    Parameters
    ----------
    protocol : Protocol
    task : _Task

    Returns
    -------
    str
    """
    row, fitted, true = fit_one(protocol, task)
    lines = [f"{task}", "errors: " + ", ".join(
        f"{key}={row[key]:.4g}" for key in ("D1", "D2", "D1_raw", "D2_raw", "L2"))
        + f"; {row['n_iter']} iterations, converged={row['converged']}"]
    for name, measure in (("fitted", fitted), ("true", true)):
        c = measure.canonical()
        lines.append(f"{name}: output scale {measure.output_scale:.4g}, "
                     f"intercept {measure.output_intercept:.4g}")
        for i in range(measure.n_experts):
            lines.append(
                f"  atom {i}: weight {c.weights[i]:.3f}, |beta1| "
                f"{np.linalg.norm(measure.gate_coef[i]):.3f}, gate atom "
                f"{np.array2string(c.gate_atoms[i], precision=3)}, a "
                f"{np.array2string(c.expert_coef[i], precision=3)}, b "
                f"{c.expert_intercept[i]:.3f}")
    return "\n".join(lines)
