"""Shared pieces of the benchmarks (never imported by the package).

* :func:`make_model_data`: data drawn from the mixture of experts itself, through
  ``sklearn_cosmoe._model.predict`` (the package's own forward pass);
* :func:`numpy_objective`: an independent, straightforward vectorised NumPy
  implementation of the least-squares objective and its exact gradient, written
  from the objective of the user guide (doc/user_guide/solver.rst, "The
  objective"), with the package's flat parameter layout;
* :func:`torch_objective`: the same formulas in PyTorch (float64, autograd).

Only linear experts and dense gates are implemented in the two baselines: that
is the model that the speed benchmark races.
"""

import subprocess
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from sklearn_cosmoe._model import MoEParams, MoESpec, predict

# kept importable from here, where the benchmarks have always found them
from _output import RESULTS, git_describe, output_folder  # noqa: E402, F401

ROUTERS = ("perturbed_cosine", "cosine", "linear")


# --------------------------------------------------------------------------
# data drawn from the model
# --------------------------------------------------------------------------
def true_params(d, k, router, rng, tau1=1.0):
    """True parameters of a ``k``-expert mixture on ``d`` standard-normal features.

    Gate directions are random unit vectors, scaled per router so that the
    three routers have gate terms of the same size: a cosine term
    ``beta1_i . x / (|beta1_i| |x|)`` of a random direction has sd about
    ``1/sqrt(d)``, so

    * cosine: unit ``beta1_i`` (its scale is invisible anyway);
    * perturbed cosine: ``|beta1_i| = 3 tau1``, i.e. ``|u_i| = 3/4``;
    * linear: ``|beta1_i| = 1/sqrt(d)``, so ``beta1_i . x`` also has sd ``1/sqrt(d)``.

    Temperature 1 gives soft gates (the paper's model), 0.1 sharp ones.
    Experts: ``a_i ~ N(0, I/d)`` (so ``a_i . x`` has unit variance),
    ``b_i ~ N(0, 1)``; gate intercepts ``N(0, 0.25)``.
    """
    dirs = rng.standard_normal((k, d))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    scale = {"perturbed_cosine": 3.0 * tau1, "cosine": 1.0, "linear": 1.0 / np.sqrt(d)}
    return MoEParams(
        gate_coef=dirs * scale[router],
        gate_intercept=0.5 * rng.standard_normal(k),
        expert_coef=rng.standard_normal((k, d)) / np.sqrt(d),
        expert_intercept=rng.standard_normal(k),
    )


def make_model_data(n, d, k, *, router="perturbed_cosine", temperature=1.0,
                    snr=9.0, seed=0, sample_seed=None, tau1=1.0, tau2=1.0):
    """``X ~ N(0, I_d)``, ``y = f*(x) + eps`` with ``f*`` a mixture of ``k`` linear experts.

    The noise is Gaussian with variance ``Var(f*) / snr``, so the noise-limit
    R² (the R² of ``f*`` itself) is about ``snr / (1 + snr)`` (0.9 by default).
    The true parameters depend only on ``(seed, d, k, router)``, not on ``n``
    or ``sample_seed``: a larger ``n`` or another ``sample_seed`` (default
    ``seed``) draws more data from the same model.

    Returns
    -------
    X, y, f : ndarrays
    params : MoEParams
    spec : MoESpec
    """
    param_rng = np.random.default_rng([seed, d, k, ROUTERS.index(router)])
    params = true_params(d, k, router, param_rng, tau1=tau1)
    spec = MoESpec(router=router, tau1=tau1, tau2=tau2, temperature=temperature)
    if sample_seed is None:
        sample_seed = seed
    rng = np.random.default_rng([sample_seed, n, d, k, 1])
    X = rng.standard_normal((n, d))
    f = predict(X, params, spec)
    # noise level from a fixed reference sample, so it does not depend on n
    X_ref = np.random.default_rng([seed, d, k, 2]).standard_normal((20_000, d))
    sigma = np.sqrt(np.var(predict(X_ref, params, spec)) / snr)
    y = f + sigma * rng.standard_normal(n)
    return X, y, f, params, spec


# --------------------------------------------------------------------------
# the objective, written again from the user guide (doc/user_guide/solver.rst)
# --------------------------------------------------------------------------
def unpack(theta, k, d):
    kd = k * d
    return (theta[:kd].reshape(k, d), theta[kd:kd + k],
            theta[kd + k:2 * kd + k].reshape(k, d), theta[2 * kd + k:2 * kd + 2 * k])


def router_scores(X, B1, b0, spec, x_norms=None):
    """The router's forward pass in NumPy: scores ``S`` of shape (n, k), each
    row less its maximum (for a stable softmax).

    Returns
    -------
    S, inv_t, cosine
        ``cosine`` is ``(P, nb, inv_c, inv_q)`` for
        :func:`router_backward_and_ridge` (``P = beta1_i . x / c``), None
        under the linear router.  Shared by the regressor's and the
        classifier's NumPy objectives.
    """
    inv_t = 1.0 / spec.temperature
    D = X @ B1.T                                   # beta1_i . x
    if spec.router == "linear":
        S, cosine = D * inv_t + b0, None
    else:
        tau1, tau2 = ((spec.tau1, spec.tau2) if spec.router == "perturbed_cosine"
                      else (0.0, 0.0))
        nb = np.sqrt(np.einsum("ij,ij->i", B1, B1))
        q = nb + tau1
        if x_norms is None:
            x_norms = np.sqrt(np.einsum("ij,ij->i", X, X))
        c = x_norms + tau2
        inv_c = np.divide(1.0, c, out=np.zeros_like(c), where=c > 0)
        inv_q = np.divide(1.0, q, out=np.zeros_like(q), where=q > 0)
        P = D * inv_c[:, None]
        S = P * (inv_q * inv_t) + b0
        cosine = (P, nb, inv_c, inv_q)
    return S - S.max(axis=1, keepdims=True), inv_t, cosine


def numpy_objective(theta, X, y, w, k, spec, x_norms=None):
    """Objective and gradient, vectorised NumPy, (n, k) temporaries.

    ``x_norms``, the row norms of ``X``, may be computed once for all
    evaluations, as the package's solver and :func:`torch_loss_fn` do.

    ``L = 1/2 sum_n w_n r_n^2 / sum_n w_n + alpha/2 |A|^2`` (+ ``alpha/2 |B1|^2``
    under the linear router), ``r = y - f``, ``f = sum_i g_i (a_i . x + b_i)``.
    Linear experts, dense gates; ``theta`` in the package's layout
    ``[B1, beta0, A, b]``.
    """
    n, d = X.shape
    B1, b0, A, b = unpack(theta, k, d)
    S, inv_t, cosine = router_scores(X, B1, b0, spec, x_norms)
    G = np.exp(S)
    G /= G.sum(axis=1, keepdims=True)
    H = X @ A.T + b
    f = np.einsum("ij,ij->i", G, H)
    r = y - f
    W = w.sum()
    wr = w * r
    loss = 0.5 * np.dot(wr, r) / W
    delta = -wr / W                                # dL/df
    dH = delta[:, None] * G                        # dL/dH_i = -r G_i
    dS = dH * (H - f[:, None])                     # dL/ds_i = -r G_i (H_i - f)
    gA = dH.T @ X
    gb = dH.sum(axis=0)
    loss, gA, gB1, gb0 = router_backward_and_ridge(loss, gA, dS, X, spec, A, B1, inv_t,
                                                   cosine)
    return loss, np.concatenate([gB1.ravel(), gb0, gA.ravel(), gb])


def router_backward_and_ridge(loss, gA, dS, X, spec, A, B1, inv_t, cosine):
    """The router's part of a NumPy backward pass, and the ridge term.

    From ``dS`` (dL/ds, one column per expert) the gradients with respect to
    the gate intercepts and coefficients; then ``alpha/2 |A|^2`` (and
    ``|B1|^2`` under the linear router) added to the loss and gradients.
    ``cosine`` is ``(P, nb, inv_c, inv_q)`` of the cosine routers' forward
    pass, None under the linear router.  Shared by the regressor's and the
    classifier's NumPy objectives.

    Returns
    -------
    loss, gA, gB1, gb0
    """
    gb0 = dS.sum(axis=0)
    if spec.router == "linear":
        gB1 = (dS.T @ X) * inv_t
    else:
        # ds_i/dbeta1_i = x / (q c) - beta1_i p / (|beta1_i| q^2), times 1/T
        P, nb, inv_c, inv_q = cosine
        inv_nb = np.divide(1.0, nb, out=np.zeros_like(nb), where=nb > 0)
        gB1 = ((dS * inv_c[:, None]).T @ X) * (inv_q * inv_t)[:, None]
        radial = np.einsum("ij,ij->j", dS, P) * inv_nb * inv_q ** 2 * inv_t
        gB1 -= B1 * radial[:, None]
    if spec.alpha > 0:
        loss += 0.5 * spec.alpha * np.dot(A.ravel(), A.ravel())
        gA = gA + spec.alpha * A
        if spec.router == "linear":
            loss += 0.5 * spec.alpha * np.dot(B1.ravel(), B1.ravel())
            gB1 = gB1 + spec.alpha * B1
    return loss, gA, gB1, gb0


def torch_router(X, spec, x_norms=None):
    """The router's forward pass in PyTorch for fixed data.

    Returns ``scores(B1, b0)``, the scores ``S`` of shape (n, k) as tensors
    (autograd follows them).  Shared by the regressor's and the classifier's
    PyTorch losses, as :func:`router_scores` by their NumPy objectives.
    """
    import torch

    Xt = torch.as_tensor(X)
    inv_t = 1.0 / spec.temperature
    if spec.router == "linear":
        return lambda B1, b0: (Xt @ B1.T) * inv_t + b0
    tau1, tau2 = ((spec.tau1, spec.tau2) if spec.router == "perturbed_cosine"
                  else (0.0, 0.0))
    if x_norms is None:
        x_norms = np.linalg.norm(X, axis=1)
    inv_c = 1.0 / (torch.as_tensor(x_norms)[:, None] + tau2)

    def scores(B1, b0):
        q = torch.linalg.vector_norm(B1, dim=1) + tau1
        return (Xt @ B1.T) * inv_c / q * inv_t + b0

    return scores


def torch_add_ridge(value, A, B1, spec):
    """``value`` plus the ridge term: ``alpha / 2`` times the squared experts'
    coefficients, and the router's too under the linear router."""
    if spec.alpha > 0:
        value = value + 0.5 * spec.alpha * (A * A).sum()
        if spec.router == "linear":
            value = value + 0.5 * spec.alpha * (B1 * B1).sum()
    return value


def torch_loss_fn(X, y, w, k, spec):
    """Return ``loss(theta)`` in PyTorch (float64, autograd) for fixed data.

    The same formulas as :func:`numpy_objective`, written the way research
    code writes a model's forward pass; the gradient comes from autograd.
    """
    import torch

    Xt = torch.as_tensor(X)
    yt = torch.as_tensor(y)
    wt = torch.as_tensor(w)
    W = float(w.sum())
    d = X.shape[1]
    kd = k * d
    router = torch_router(X, spec)

    def loss(theta):
        B1 = theta[:kd].view(k, d)
        b0 = theta[kd:kd + k]
        A = theta[kd + k:2 * kd + k].view(k, d)
        b = theta[2 * kd + k:2 * kd + 2 * k]
        G = torch.softmax(router(B1, b0), dim=1)
        H = Xt @ A.T + b
        f = (G * H).sum(dim=1)
        r = yt - f
        return torch_add_ridge(0.5 * (wt * r * r).sum() / W, A, B1, spec)

    return loss


# --------------------------------------------------------------------------
# timing
# --------------------------------------------------------------------------
def log(*args):
    """Print at once (the benchmarks' progress goes to a log file)."""
    print(*args, flush=True)


def time_samples(fn, *, min_time=0.5, max_repeat=50, warmup=1):
    """Wall times of repeated ``fn()`` calls that fill about ``min_time`` s."""
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < max_repeat:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if time.perf_counter() - start > min_time and len(times) >= 3:
            break
    return times


def timed_fit(model, X, y):
    """Wall time of ``model.fit(X, y)``, convergence warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        model.fit(X, y)
        return time.perf_counter() - t0


def time_call(fn, **kwargs):
    """Median wall time of ``fn()`` (:func:`time_samples` takes the keywords)."""
    return float(np.median(time_samples(fn, **kwargs)))


def fmt_time(t):
    if t is None:
        return "-"
    if t < 1e-3:
        return f"{t * 1e6:.0f} µs"
    if t < 1:
        return f"{t * 1e3:.1f} ms"
    return f"{t:.2f} s"


def package_revision():
    """Short git revision of the package, with '+dirty' if sklearn_cosmoe/ has edits."""
    root = RESULTS.parent.parent
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "sklearn_cosmoe"],
                               cwd=root, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev + ("+dirty" if dirty else "")
