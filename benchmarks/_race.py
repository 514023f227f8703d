"""The time-to-target race of ``bench_speed.py``: traces, drivers and the race rule.

Every method is a driver around an objective: the package's solver around its
numba kernel, scipy's L-BFGS-B around the NumPy objective or around the
package's kernel, and PyTorch's Adam and LBFGS around autograd.  Each records
the loss of every evaluation against wall time in a :class:`Trace`, which
ends the run at the time budget, at a stall or at the target.
"""

import time

import numpy as np
from scipy.optimize import minimize
from sklearn.utils import check_random_state
from threadpoolctl import threadpool_limits

from sklearn_cosmoe import CosineMoERegressor, _objective
from sklearn_cosmoe._model import MoEParams, MoESpec, objective
from sklearn_cosmoe._objective import ArrayObjective
from sklearn_cosmoe._solver import fit_least_squares, initial_params

from _common import fmt_time, make_model_data, numpy_objective, torch_loss_fn

D = 10
# the estimator's defaults (ridge alpha included)
SPEC = MoESpec(router="perturbed_cosine", tau1=1.0, tau2=1.0, temperature=1.0,
               alpha=CosineMoERegressor().alpha)
ADAM_LRS = (0.3, 0.1, 0.03, 0.01, 0.003)
REL_TARGET = 0.01          # target = best loss reached by any method * (1 + 1 %)
KERNEL_ONLY = "package kernel + scipy L-BFGS-B"   # the drivers of the baselines on
KERNEL_TORCH = "package kernel + torch LBFGS"     # the package's kernel: kernel-only ratios
RACE_RUNS = 3              # every method runs this many times per race cell; its
#                            time to the target is the median over all its runs,
#                            a run that misses the target counting as infinite
STALL_EVALS = 200          # a baseline stops when its best loss has not improved
STALL_REL = 1e-7           # by this (relative) over this many evaluations: far
                           # below the 1 % of the target, and it saves the budget



# --------------------------------------------------------------------------
# traces of the loss against wall time
# --------------------------------------------------------------------------
class _Stop(Exception):
    """Raised from inside an objective to end a run (budget, stall or target)."""


class Trace:
    """Loss of every evaluation against wall time since :meth:`start`."""

    def __init__(self, budget, stop_at=-np.inf):
        self.budget = budget
        self.stop_at = stop_at
        self.times, self.losses = [], []
        self.best = np.inf
        self.best_at = 0
        self.status = "converged"

    def start(self):
        self.t0 = time.perf_counter()

    def record(self, loss, stall=True):
        t = time.perf_counter() - self.t0
        loss = float(loss)
        self.times.append(t)
        self.losses.append(loss)
        if loss < self.best * (1 - STALL_REL):
            self.best, self.best_at = loss, len(self.losses)
        elif loss < self.best:
            self.best = loss
        if t > self.budget:
            self.status = "budget"
            raise _Stop
        if loss <= self.stop_at:
            self.status = "target"
            raise _Stop
        if stall and len(self.losses) - self.best_at > STALL_EVALS:
            self.status = "stalled"
            raise _Stop

    def time_to(self, target):
        """(time, evaluations) when a loss <= target was first evaluated, or None."""
        hits = np.flatnonzero(np.asarray(self.losses) <= target)
        if hits.size == 0:
            return None, None
        return self.times[hits[0]], int(hits[0]) + 1

    def summary(self):
        return {"status": self.status, "best_loss": self.best,
                "evals": len(self.losses),
                "time": self.times[-1] if self.times else 0.0}


def run_package(X, y, w, k, theta0, budget, stop_at=-np.inf):
    """The package's solver; ``theta0=None`` uses its data-driven start (timed).

    It stops at the budget, at convergence or at the first loss <= ``stop_at``.
    """
    trace = Trace(budget, stop_at)
    original = _objective.objective

    def traced(theta, *args):
        out = original(theta, *args)
        trace.record(out[0], stall=False)
        return out

    _objective.objective = traced
    try:
        trace.start()
        data = ArrayObjective(X, y, w)
        if theta0 is None:  # as CosineMoERegressor.fit does
            params0 = initial_params(data, SPEC, k, check_random_state(0))
        else:
            params0 = MoEParams.from_vector(theta0.copy(), (k, X.shape[1]), SPEC)
        fit_least_squares(data, params0, SPEC, max_iter=100_000, tol=1e-10,
                          solve_experts_first=theta0 is not None)
    except _Stop:
        pass
    finally:
        _objective.objective = original
    if not trace.losses:
        raise RuntimeError("the package's solver no longer calls _objective.objective; "
                           "update run_package")
    return trace


def run_numpy(X, y, w, k, theta0, budget, stop_at=-np.inf, kernel="numpy"):
    """scipy's L-BFGS-B on the NumPy objective, or on the package's (``kernel="package"``).

    The second is the same algorithm with the package's kernel: the ratio of
    the two is the kernel's share of the gain, free of the algorithm's.  Both
    run with BLAS limited to one thread, as the package's solver runs its
    kernels: otherwise BLAS's idle threads spin between calls and take the
    cores from numba's (on two loaded cores the package's objective went
    from 3 to 25 ms per L-BFGS-B evaluation at n = 1e4, k = 4; NumPy's from
    20 to 42 ms).
    """
    trace = Trace(budget, stop_at)
    x_norms = np.linalg.norm(X, axis=1)  # once, as the package's solver does
    shape = (k, X.shape[1])

    def fun(theta):
        if kernel == "package":
            out = objective(theta, X, y, w, shape, SPEC, x_norms)
        else:
            out = numpy_objective(theta, X, y, w, k, SPEC, x_norms)
        trace.record(out[0])
        return out

    trace.start()
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            minimize(fun, theta0.copy(), jac=True, method="L-BFGS-B",
                     options={"maxiter": 10**6, "maxfun": 10**7, "ftol": 1e-15,
                              "gtol": 1e-10})
    except _Stop:
        pass
    return trace


def run_torch_adam(X, y, w, k, theta0, budget, lr, stop_at=-np.inf):
    import torch

    loss_fn = torch_loss_fn(X, y, w, k, SPEC)
    trace = Trace(budget, stop_at)
    theta = torch.tensor(theta0, requires_grad=True)
    opt = torch.optim.Adam([theta], lr=lr)
    trace.start()
    try:
        while True:
            opt.zero_grad()
            loss = loss_fn(theta)
            loss.backward()
            trace.record(loss.item())
            opt.step()
    except _Stop:
        pass
    return trace


def run_torch_lbfgs(X, y, w, k, theta0, budget, stop_at=-np.inf, kernel="torch"):
    """``torch.optim.LBFGS`` on autograd, or on the package's objective (``kernel="package"``).

    The second hands LBFGS the package's loss and gradient (computed in
    NumPy arrays that share the parameter tensor's memory): the same driver
    with the package's kernel, so its ratio to the first is the kernel's share
    of the gain against PyTorch.  It runs with BLAS limited to one thread, as
    ``run_numpy`` runs the package's kernel.
    """
    import torch

    trace = Trace(budget, stop_at)
    theta = torch.tensor(theta0, requires_grad=True)
    opt = torch.optim.LBFGS([theta], lr=1.0, max_iter=100, history_size=10,
                            tolerance_grad=1e-10, tolerance_change=1e-15,
                            line_search_fn="strong_wolfe")
    if kernel == "package":
        x_norms = np.linalg.norm(X, axis=1)  # once, as the package's solver does
        shape = (k, X.shape[1])

        def closure():
            loss, grad = objective(theta.detach().numpy(), X, y, w, shape, SPEC, x_norms)
            theta.grad = torch.from_numpy(grad)
            trace.record(loss)
            return loss
    else:
        loss_fn = torch_loss_fn(X, y, w, k, SPEC)

        def closure():
            opt.zero_grad()
            loss = loss_fn(theta)
            loss.backward()
            trace.record(loss.item())
            return loss

    trace.start()
    try:
        with threadpool_limits(limits=1 if kernel == "package" else None, user_api="blas"):
            while True:
                before = len(trace.losses)
                opt.step(closure)
                if len(trace.losses) - before <= 1:   # nothing left to do
                    break
    except _Stop:
        pass
    return trace


def random_start(k, d, seed=0):
    """PyTorch's ``nn.Linear`` default: every entry uniform on +-1/sqrt(d)."""
    rng = np.random.default_rng([seed, k, d])
    bound = 1.0 / np.sqrt(d)
    return rng.uniform(-bound, bound, 2 * k * d + 2 * k)


def best_start(X, y, w, k):
    """The package's data-driven start (spherical k-means + least squares)."""
    return initial_params(ArrayObjective(X, y, w), SPEC, k,
                          check_random_state(0)).to_vector(SPEC)


def race_data(n, k):
    X, y, _, _, _ = make_model_data(n, D, k, router=SPEC.router,
                                    temperature=SPEC.temperature, seed=0)
    y = (y - y.mean()) / y.std()      # the estimator's standardized target
    return X, y, np.ones(n)


def tune_adam(X, y, w, k, theta0, budget):
    best_lr, best_loss, losses = None, np.inf, {}
    for lr in ADAM_LRS:
        trace = run_torch_adam(X, y, w, k, theta0, budget, lr)
        losses[lr] = trace.best
        if trace.best < best_loss:
            best_lr, best_loss = lr, trace.best
    return best_lr, losses


def race(n, k, start, budget, adam_lr):
    """All methods from one start on one data set; returns a result dict."""
    X, y, w = race_data(n, k)
    if start == "random":
        theta0 = random_start(k, D)
        package_start = theta0
    else:
        theta0 = best_start(X, y, w, k)
        package_start = None
    runs = {
        "package": lambda stop: run_package(X, y, w, k, package_start, budget, stop),
        KERNEL_ONLY: lambda stop: run_numpy(
            X, y, w, k, theta0, budget, stop, kernel="package"),
        "numpy+scipy L-BFGS-B": lambda stop: run_numpy(X, y, w, k, theta0, budget, stop),
        f"torch Adam (lr {adam_lr})": lambda stop: run_torch_adam(
            X, y, w, k, theta0, budget, adam_lr, stop),
        "torch LBFGS": lambda stop: run_torch_lbfgs(X, y, w, k, theta0, budget, stop),
        KERNEL_TORCH: lambda stop: run_torch_lbfgs(X, y, w, k, theta0, budget, stop,
                                                   kernel="package"),
    }
    traces = {name: run(-np.inf) for name, run in runs.items()}
    best = min(t.best for t in traces.values())
    target = best * (1 + REL_TARGET)
    result = {"n": n, "k": k, "start": start, "budget": budget, "best_loss": best,
              "target": target, "runs": RACE_RUNS, "methods": {}}
    # One rule for every method: RACE_RUNS runs each, the first above (free,
    # to find the target) and RACE_RUNS - 1 more that stop at the target;
    # the statistic is the median over all runs, a miss counting as infinite.
    # Every run of a method evaluates the same sequence of losses, so a
    # method that missed the target in its first run misses it in all.
    times = {}
    for name, trace in traces.items():
        first = trace.time_to(target)[0]
        if first is None:
            times[name] = [np.inf] * RACE_RUNS
        else:
            times[name] = [first] + [runs[name](target).time_to(target)[0] or np.inf
                                     for _ in range(RACE_RUNS - 1)]
    t_pkg = float(np.median(times["package"]))
    t_pkg = t_pkg if np.isfinite(t_pkg) else None
    for name, trace in traces.items():
        _, e_hit = trace.time_to(target)
        t_hit = float(np.median(times[name]))
        t_hit = t_hit if np.isfinite(t_hit) else None
        entry = trace.summary()
        entry.update({"time_to_target": t_hit, "evals_to_target": e_hit,
                      "run_times": [t if np.isfinite(t) else None for t in times[name]],
                      "ratio": (t_hit / t_pkg if t_hit is not None and t_pkg
                                else None),
                      "trace": [trace.times, trace.losses]})
        result["methods"][name] = entry
    return result


def race_line(res):
    parts = []
    for name, m in res["methods"].items():
        if m["time_to_target"] is None:
            why = "> budget" if m["status"] == "budget" else f"stuck at {m['best_loss']:.5g}"
            parts.append(f"{name}: {why} ({m['evals']} evals, {fmt_time(m['time'])})")
        else:
            ratio = "" if m["ratio"] is None or name == "package" else f" = {m['ratio']:.1f}x"
            parts.append(f"{name}: {fmt_time(m['time_to_target'])} "
                         f"({m['evals_to_target']} evals){ratio}")
    return "; ".join(parts)
