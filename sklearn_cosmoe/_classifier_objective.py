"""The classifier's side of the fit: its objective, and its Fisher matrix over the rows.

The mixture's class probabilities depend on the parameters through ``m = k +
k C`` linear predictors per row (the *predictors* ``eta``): the router scores
``s_i = u_i . psi(x) + beta_0i`` (``psi = x / (T p(x))``, ``u_i`` the gate
coefficient with the router's norm held fixed, as in
:mod:`sklearn_cosmoe._jacobian`) and the experts' logits ``z_ic = A_ic . x +
b_ic``.  With the responsibilities ``r_ic = g_i pi_ic / p_c`` (of expert
``i`` for class ``c``), the derivative of ``log p_c`` is ``q_c``:

* ``r_ic - g_i`` along ``s_i``,
* ``r_ic (1[c = c'] - pi_ic')`` along ``z_ic'``.

The *Fisher matrix* (the generalized Gauss-Newton matrix of the negative
log-likelihood, as for the regressor's least squares: positive
semi-definite, one pass over the rows) is ``sum_n w_n sum_c p_nc q_nc
q_nc^T`` in the predictors, ``sum_c grad p_c grad p_c^T / p_c``.  The exact
Hessian of ``-log p_y`` is ``q_y q_y^T - H(p_y) / p_y``, with the second
derivatives of ``p_y = sum_i g_i pi_iy`` (``R_i = r_iy``, ``E_ic = 1[c = y]
- pi_ic``)

* ``(s_i, s_j)``: ``1[i = j] (R_i - g_i) - g_i (R_j - g_j) - g_j (R_i - g_i)``,
* ``(s_i, z_jc)``: ``(1[i = j] - g_i) R_j E_jc``,
* ``(z_ic, z_ic')``: ``R_i (E_ic E_ic' - pi_ic 1[c = c'] + pi_ic pi_ic')``, and 0
  between two experts' logits;

its difference from the Fisher matrix is the *curvature* that the
convergence test's second model reads (:mod:`sklearn_cosmoe._solvers`).  Top-K
gates hold these formulas piece by piece (``g_i = r_ic = 0`` off the selected
experts).  A row's ``m x m`` matrices become the parameters' through the
features of each predictor (``[psi, 1]`` for a score, ``[x, 1]`` for a logit):
the sums ``sum_n c_n[a, b] phi_a phi_b^T`` are three products with the rows'
``x x^T``, ``x`` and 1, in blocks of rows added in block order with BLAS on one
thread (no bits depend on a thread count).
"""

import numpy as np
from scipy.special import logsumexp

from . import _kernels
from ._classifier_model import ClassifierParams, gates_and_log_proba, objective
from ._jacobian import GN_BLOCK, _score_scale, check_sums, to_gate_coef
from ._model import row_norms

#: Largest number of entries of one block's per-row arrays (``rows x d^2`` and
#: ``rows x m^2``): 8 MiB each, small beside the matrices they sum into.
FISHER_BLOCK_ENTRIES = 2 ** 20


def block_rows(n_features, n_predictors, n_classes):
    """Rows per block of :func:`fisher_sums` (at most ``GN_BLOCK``, at least 1)."""
    widest = max(n_features ** 2, n_predictors ** 2, n_classes * n_predictors, 1)
    return int(min(GN_BLOCK, max(1, FISHER_BLOCK_ENTRIES // widest)))


def _row_terms(X, x_norms, y, params, spec):
    """Per row: gates ``(n, k)``, ``pi`` ``(n, k, C)``, ``log p`` ``(n, C)`` and the
    derivatives ``q_c`` of ``log p_c`` in the predictors ``(n, C, m)``."""
    n, d = X.shape
    k, n_classes, _ = params.shape
    gates = gates_and_log_proba(X, params, spec, x_norms)[0]
    logits = (X @ params.expert_coef.reshape(k * n_classes, d).T
              + params.expert_intercept.ravel()).reshape(n, k, n_classes)
    log_pi = logits - logsumexp(logits, axis=2, keepdims=True)
    with np.errstate(divide="ignore"):
        log_g = np.log(gates)
    # from the same terms as r: with one gate of 1 (top-1) r is exactly 1
    log_p = logsumexp(log_g[:, :, None] + log_pi, axis=1)
    # r[n, c, i]: responsibility of expert i for class c (0 where the gate is)
    r = np.exp(log_g[:, None, :] + log_pi.transpose(0, 2, 1) - log_p[:, :, None])
    pi = np.exp(log_pi)
    along_logits = (r[:, :, :, None]
                    * (np.eye(n_classes)[None, :, None, :] - pi[:, None, :, :]))
    q = np.concatenate([r - gates[:, None, :],
                        along_logits.reshape(n, n_classes, k * n_classes)], axis=2)
    return gates, pi, log_p, r, q


def _hessian_of_probability(y, gates, pi, r):
    """``H(p_y) / p_y`` in the predictors, ``(n, m, m)`` (module docstring)."""
    n, k, n_classes = pi.shape
    rows = np.arange(n)
    R = r[rows, y]                                   # (n, k)
    along_scores = R - gates
    E = np.eye(n_classes)[y][:, None, :] - pi        # (n, k, C)
    m = k + k * n_classes
    A = np.zeros((n, m, m))
    ss = (along_scores[:, :, None] * np.eye(k)
          - gates[:, :, None] * along_scores[:, None, :]
          - along_scores[:, :, None] * gates[:, None, :])
    A[:, :k, :k] = ss
    sz = ((np.eye(k)[None] - gates[:, :, None])[:, :, :, None]
          * (R[:, :, None] * E)[:, None, :, :]).reshape(n, k, k * n_classes)
    A[:, :k, k:] = sz
    A[:, k:, :k] = sz.transpose(0, 2, 1)
    zz = R[:, :, None, None] * (E[:, :, :, None] * E[:, :, None, :]
                                - pi[:, :, :, None] * np.eye(n_classes)
                                + pi[:, :, :, None] * pi[:, :, None, :])
    for i in range(k):
        block = slice(k + i * n_classes, k + (i + 1) * n_classes)
        A[:, block, block] = zz[:, i]
    return A


def _natural_order(shape):
    """``perm``: for each parameter (layout of :meth:`ClassifierParams.to_vector`) its
    place in the predictors' order ``[coefficients (m d), intercepts (m)]``."""
    k, n_classes, d = shape
    m = k + k * n_classes
    kd = k * d
    return np.concatenate([np.arange(kd), m * d + np.arange(k),
                           kd + np.arange(k * n_classes * d),
                           m * d + k + np.arange(k * n_classes)])


def _to_parameters(coef, X, rho_eta):
    """``sum_n coef[n, a, b] phi_a(n) phi_b(n)^T`` for each matrix of ``coef``
    ``(t, n, m, m)``, laid out ``(t, m (d + 1), m (d + 1))`` in the
    predictors' order (``phi_a = [rho_a x, 1]``)."""
    t, n, m, _ = coef.shape
    d = X.shape[1]
    scaled = coef * rho_eta[None, :, :, None]            # rho_a c_ab
    both = scaled * rho_eta[None, :, None, :]            # rho_a rho_b c_ab
    outer = (X[:, :, None] * X[:, None, :]).reshape(n, d * d)
    xx = (both.transpose(0, 2, 3, 1).reshape(t * m * m, n) @ outer).reshape(t, m, m, d, d)
    cross = (scaled.transpose(0, 2, 3, 1).reshape(t * m * m, n) @ X).reshape(t, m, m, d)
    out = np.empty((t, m * (d + 1), m * (d + 1)))
    md = m * d
    out[:, :md, :md] = xx.transpose(0, 1, 3, 2, 4).reshape(t, md, md)
    # (a, j) x b: sum_n c_ab rho_a x_j
    out[:, :md, md:] = cross.transpose(0, 1, 3, 2).reshape(t, md, m)
    out[:, md:, :md] = out[:, :md, md:].transpose(0, 2, 1)
    out[:, md:, md:] = coef.sum(axis=1)
    return out


def _split_by_sign(matrices):
    """Each symmetric matrix of ``(n, m, m)`` as its positive and negative parts.

    A row (and column) of zeros stays zero in both: the eigen-solver's
    rounding must not give a direction the data do not determine (an
    unselected expert under top-K gates, the scores under top-1) a curvature.
    """
    values, vectors = np.linalg.eigh(matrices)
    positive = np.einsum("nab,nb,ncb->nac", vectors, np.maximum(values, 0.0), vectors)
    zero = ~np.any(matrices != 0, axis=2)
    positive[zero[:, :, None] | zero[:, None, :]] = 0.0
    return positive, matrices - positive


def fisher_sums(X, x_norms, y, sample_weight, params, spec, exact=False):
    """Un-normalised sums over the rows, added in block order.

    Returns ``(fisher, gradient, loss, weight, curvature)``: the Fisher matrix
    ``sum_n w_n sum_c p_nc q_nc q_nc^T``, the gradient ``-sum_n w_n q_ny`` and
    ``-sum_n w_n log p_ny`` in the layout of
    :meth:`~sklearn_cosmoe._classifier_model.ClassifierParams.to_vector` with
    the router's ``u`` (module docstring), ``sum_n w_n``, and None.  With
    ``exact``, the first matrix is the *metric*, the Fisher matrix plus the
    sum of each row's curvature's positive part (the exact Hessian less the
    Fisher matrix, split by the signs of its eigenvalues), and the last the
    sum of the rows' negative parts: the exact Hessian is their sum
    (:func:`finish_fisher`).
    """
    n, d = X.shape
    k, n_classes, _ = params.shape
    m = k + k * n_classes
    size = m * (d + 1)
    t = 2 if exact else 1
    total = np.zeros((t, size, size))
    gradient = np.zeros(size)
    loss = 0.0
    rho = _score_scale(x_norms, spec)
    step = block_rows(d, m, n_classes)
    for start in range(0, n, step):
        rows = slice(start, min(start + step, n))
        Xb, w, yb = X[rows], sample_weight[rows], y[rows]
        nb = Xb.shape[0]
        gates, pi, log_p, r, q = _row_terms(Xb, x_norms[rows], yb, params, spec)
        fisher = np.einsum("nc,nca,ncb->nab", np.exp(log_p), q, q)
        q_y = q[np.arange(nb), yb]
        coef = np.empty((t, nb, m, m))
        if exact:
            hessian = (q_y[:, :, None] * q_y[:, None, :]
                       - _hessian_of_probability(yb, gates, pi, r))
            positive, negative = _split_by_sign(hessian - fisher)
            fisher += positive
            coef[1] = w[:, None, None] * negative
        coef[0] = w[:, None, None] * fisher
        rho_eta = np.concatenate([np.repeat(rho[rows, None], k, axis=1),
                                  np.ones((nb, m - k))], axis=1)
        total += _to_parameters(coef, Xb, rho_eta)
        along = -w[:, None] * q_y
        gradient[:m * d] += ((along * rho_eta).T @ Xb).ravel()
        gradient[m * d:] += along.sum(axis=0)
        loss -= float(np.dot(w, log_p[np.arange(nb), yb]))
    perm = _natural_order(params.shape)
    placed = total[:, perm][:, :, perm]
    return (placed[0], gradient[perm], loss, float(np.sum(sample_weight)),
            placed[1] if exact else None)


def finish_fisher(sums, params, spec, atoms=False):
    """``(loss, gradient, fisher)`` of the objective from :func:`fisher_sums`; with
    the curvature in the sums, ``(loss, gradient, metric, curvature)``.

    Divided by the total weight, through the router's chain rule to
    ``beta_1`` unless ``atoms``, with the ridge terms of
    :func:`~sklearn_cosmoe._classifier_model.objective` and their curvature.
    The *metric* is the Fisher matrix plus the sum of the rows' positive
    curvature, and ``curvature`` the sum of their negative curvature
    (:func:`fisher_sums`): the exact Hessian is ``metric + curvature`` (in
    the atoms or under the linear router only).  The Fisher matrix is the exact Hessian's
    expectation over labels drawn from the model; where the model is sure of
    a class that other experts make likely (an expert whose logit for it,
    or whose gate, heads for minus infinity), the gradient and the exact
    Hessian are of the order of a small probability ``e`` and the Fisher
    matrix of ``e^2``, so the Fisher decrement ``g^T F^+ g / 2`` is of order
    1, a decrease that no step realises (the objective is exponentially flat
    there).  The metric is positive semi-definite and at least both the
    Fisher matrix and the exact Hessian, so the convergence test's first
    decrement never counts on less curvature than either; its second
    (the exact Hessian's eigenvalues in absolute value) covers the
    directions of negative curvature.
    """
    fisher, gradient, loss, weight, curvature = sums
    exact = curvature is not None
    check_sums(weight, exact, atoms, spec)
    k, n_classes, d = params.shape
    kd = k * d
    fisher, gradient, loss = fisher / weight, gradient / weight, loss / weight
    if not atoms:
        to_gate_coef(gradient, fisher, params, spec)
    if spec.alpha > 0:
        a = spec.alpha
        coef = params.expert_coef.ravel()
        ridge = np.arange(kd + k, kd + k + coef.size)
        gradient[ridge] += a * coef
        fisher[ridge, ridge] += a
        loss += 0.5 * a * float(np.dot(coef, coef))
        if spec.router == "linear":
            beta = params.gate_coef.ravel()
            gradient[:kd] += a * beta
            fisher[np.arange(kd), np.arange(kd)] += a
            loss += 0.5 * a * float(np.dot(beta, beta))
    if exact:
        return loss, gradient, fisher, curvature / weight
    return loss, gradient, fisher


class ClassifierObjective:
    """The classifier's objective on rows held in memory, for the minimisers.

    It has the methods of the regressor's objective that the minimisers of
    :mod:`sklearn_cosmoe._solvers` and the k-means starts call
    (:mod:`sklearn_cosmoe._objective`): ``loss_and_gradient``,
    ``gauss_newton`` (whose matrix is the Fisher matrix), ``n_features``,
    ``total_weight``, ``direction_sums`` and ``mean_square_norm``.
    ``shape`` is ``(k, C, d)``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float64, C-contiguous
    y : ndarray of shape (n_samples,), int64 class indices in ``[0, n_classes)``
    sample_weight : ndarray of shape (n_samples,), float64, positive sum
    n_classes : int
    x_norms : ndarray of shape (n_samples,), default=None
    """

    def __init__(self, X, y, sample_weight, n_classes, x_norms=None):
        self.X, self.y, self.sample_weight = X, y, sample_weight
        self.n_classes = int(n_classes)
        self.x_norms = row_norms(X) if x_norms is None else x_norms

    @property
    def n_features(self):
        return self.X.shape[1]

    @property
    def total_weight(self):
        return self.sample_weight.sum()

    def loss_and_gradient(self, theta, shape, spec):
        """The objective :func:`~sklearn_cosmoe._classifier_model.objective` and its gradient."""
        return objective(theta, self.X, self.y, self.sample_weight, shape, spec,
                         self.x_norms)

    def gauss_newton(self, theta, shape, spec, atoms=False, exact=False):
        """``(loss, gradient, fisher)`` at ``theta``; with ``exact``, ``(loss,
        gradient, metric, curvature)`` (:func:`finish_fisher`)."""
        params = ClassifierParams.from_vector(np.asarray(theta, dtype=np.float64), shape)
        sums = fisher_sums(self.X, self.x_norms, self.y, self.sample_weight, params, spec,
                           exact)
        return finish_fisher(sums, params, spec, atoms)

    def direction_sums(self, centres):
        """One step of weighted spherical k-means
        (:func:`~sklearn_cosmoe._kernels.direction_cluster_sums`)."""
        return _kernels.direction_cluster_sums(self.X, self.x_norms, self.sample_weight,
                                               centres)

    def mean_square_norm(self):
        """Weighted mean of ``|x_n|^2``."""
        w = self.sample_weight / self.sample_weight.sum()
        return float(np.sum(w * np.einsum("ij,ij->i", self.X, self.X)))

    def nearest_centre(self, centres):
        """For each row the centre ``c`` with the largest ``c . x`` (the first on a tie)."""
        return np.argmax(self.X @ centres.T, axis=1)

    def subset(self, rows):
        """The objective on the rows ``rows`` (a boolean mask)."""
        return ClassifierObjective(self.X[rows], self.y[rows], self.sample_weight[rows],
                                   self.n_classes, self.x_norms[rows])
