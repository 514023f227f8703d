"""The data's side of the fit: every sum over the rows that the solver needs.

The solvers (:mod:`sklearn_cosmoe._solver`) never touch a row: they hold an
*objective*, an object whose methods are sums over the rows of ``(X, y,
sample_weight)`` that return parameter-sized arrays.  :class:`ArrayObjective`
holds the rows in memory and runs the package's kernels on them; the Dask
objective (:mod:`sklearn_cosmoe._dask`) has the same methods, each a sum of
per-chunk kernel calls made on the workers.  An objective has:

``n_features``, ``total_weight``
    The width of ``X`` and ``sum_n w_n``.
``loss_and_gradient(theta, shape, spec)``
    The objective :func:`sklearn_cosmoe._model.objective` and its gradient.
``gauss_newton(theta, shape, spec, atoms=False, exact=False)``
    The objective, its gradient and its Gauss-Newton matrix
    (:mod:`sklearn_cosmoe._jacobian`): a sum over the rows like the others;
    with ``atoms``, the router's block in its atoms ``u_i`` (user guide
    :ref:`canonical-form`); with ``exact``, and the residual curvature that
    makes the Gauss-Newton matrix the Hessian (linear experts).
``expert_normal_equations(params, spec)``
    The normal equations of linear experts under the gates of ``params``,
    un-normalised: :func:`sklearn_cosmoe._kernels.gated_gram`.
``n_rows``, ``expert_design(params, spec)`` (in memory only)
    The weighted gated features themselves, for the experts' least squares
    in the row space when the rows are fewer than the unknowns.
``direction_sums(centres)``
    One step of weighted spherical k-means on the rows' directions.
``gated(params, spec, expert)``
    The same rows with weights ``w_n g_expert(x_n)`` (the rows of one expert).
``sandwich_sums(params, spec, covariance=True)``
    The sums over the rows of the parameters' sandwich covariance and of the
    experts' total gate weights, at a fit's end
    (:func:`sklearn_cosmoe._sandwich.sandwich_sums`).
``mean_square_norm()``, ``preactivation_mean_squares(params, spec)``,
``output_moments(params, spec)``, ``gated_squared_residuals(params, spec)``
    The weighted moments that the starts and the splits of experts use.

A target of several outputs (``y`` of shape ``(n, m)``, user guide
:ref:`multi-output`) is handled inside the methods: the normal equations get
one right-hand side per output, the moments of the outputs one entry per
output, and the squared residuals are summed over the outputs.
"""

from dataclasses import replace

import numpy as np

from . import _kernels
from ._jacobian import finish_gauss_newton, gauss_newton_sums
from ._model import (combine_outputs, gate_weights, gates_and_experts, objective,
                     params_of_vector, row_norms)
from ._sandwich import sandwich_sums


def _mean(w, v):
    """``sum(w * v)`` in a fixed order (no BLAS: the same bits with any thread count)."""
    return float(np.einsum("n,n->", w, v))


class ArrayObjective:
    """The least-squares objective on rows held in memory.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float64, C-contiguous
    y : ndarray of shape (n_samples,) or (n_samples, n_outputs), float64
        Several outputs are kept in Fortran order (a copy if they are not),
        so that each output's column is contiguous.
    sample_weight : ndarray of shape (n_samples,), float64
        Non-negative, with a positive sum.
    x_norms : ndarray of shape (n_samples,), default=None
        :func:`~sklearn_cosmoe._model.row_norms` of ``X``, computed when not
        given: the cosine scores' part of the data, computed once for every
        evaluation.

    The arrays are kept, not copied, and never written.
    """

    def __init__(self, X, y, sample_weight, x_norms=None):
        self.X = X
        self.y = y if y.ndim == 1 else np.asfortranarray(y)
        self.sample_weight = sample_weight
        self.x_norms = row_norms(X) if x_norms is None else x_norms

    @property
    def n_features(self):
        return self.X.shape[1]

    @property
    def total_weight(self):
        """``sum_n w_n``."""
        return self.sample_weight.sum()

    def _normalized_weight(self):
        return self.sample_weight / self.sample_weight.sum()

    def loss_and_gradient(self, theta, shape, spec):
        """Objective and gradient at ``theta`` (:func:`~sklearn_cosmoe._model.objective`)."""
        return objective(theta, self.X, self.y, self.sample_weight, shape, spec,
                         self.x_norms)

    def gauss_newton(self, theta, shape, spec, atoms=False, exact=False):
        """``(loss, gradient, hessian)`` at ``theta``, the Hessian Gauss-Newton's.

        :func:`~sklearn_cosmoe._jacobian.finish_gauss_newton` of the rows'
        sums; with ``atoms``, in the router's atoms rather than ``beta_1``;
        with ``exact`` (linear experts), and the residual curvature.
        """
        params = params_of_vector(theta, shape, spec)
        sums = gauss_newton_sums(self.X, self.x_norms, self.y, self.sample_weight,
                                 params, spec, exact)
        return finish_gauss_newton(sums, params, spec, atoms)

    def sandwich_sums(self, params, spec, covariance=True):
        """:func:`~sklearn_cosmoe._sandwich.sandwich_sums` of the rows."""
        return sandwich_sums(self.X, self.x_norms, self.y, self.sample_weight, params, spec,
                             covariance)

    def expert_normal_equations(self, params, spec):
        """``(gram, rhs)``: the weighted normal equations of linear experts.

        With the gates of ``params`` fixed, ``sum_n w_n z_n z_n^T`` and ``sum_n
        w_n z_n y_n`` for ``z_n = (g_1(x_n) [x_n, 1], ..., g_k(x_n) [x_n, 1])``
        (:func:`~sklearn_cosmoe._kernels.gated_gram`); not divided by the total
        weight.  With several outputs ``rhs`` has one column per output.
        """
        gates = gate_weights(self.X, params, spec, self.x_norms)
        return _kernels.gated_gram(self.X, self.y, self.sample_weight, gates)

    @property
    def n_rows(self):
        return self.X.shape[0]

    def expert_design(self, params, spec):
        """``(features, targets)``: the weighted gated features of every row,
        ``(k (d + 1), n)``, and ``sqrt(w_n) y_n`` (:func:`~sklearn_cosmoe._kernels.gated_design`),
        for the experts' least squares in the row space (fewer rows than unknowns)."""
        gates = gate_weights(self.X, params, spec, self.x_norms)
        return _kernels.gated_design(self.X, self.y, self.sample_weight, gates)

    def direction_sums(self, centres):
        """``(k, d)`` sums of ``w_n x_n / |x_n|`` over the rows nearest each centre.

        :func:`~sklearn_cosmoe._kernels.direction_cluster_sums`.
        """
        return _kernels.direction_cluster_sums(self.X, self.x_norms, self.sample_weight,
                                               centres)

    def gated(self, params, spec, expert):
        """The same rows weighted by ``w_n g_expert(x_n)`` under ``params``."""
        gates = gate_weights(self.X, params, spec, self.x_norms)
        return ArrayObjective(self.X, self.y, self.sample_weight * gates[:, expert],
                              self.x_norms)

    def mean_square_norm(self):
        """Weighted mean of ``|x_n|^2``."""
        w = self._normalized_weight()
        return float(np.sum(w * np.einsum("ij,ij->i", self.X, self.X)))

    def preactivation_mean_squares(self, params, spec):
        """Weighted means of the squared pre-activations ``(a_i . x_n + b_i)^2``.

        Shape ``(k,)``, or ``(k, m)`` with ``m`` outputs.
        """
        _, z = gates_and_experts(self.X, params, replace(spec, expert="linear"),
                                 self.x_norms)
        return np.einsum("n,nk...->k...", self._normalized_weight(), z * z)

    def output_moments(self, params, spec):
        """Weighted moments of the target and of the gated mixture.

        With ``m_n = sum_i g_i(x_n) h(a_i . x_n + b_i)`` (no output scale or
        intercept), returns the weighted means of ``y`` and ``m``, the
        variance of ``m`` and the covariance of ``m`` and ``y``: what the
        least-squares output scale and intercept need.  Floats with one
        output; with ``m`` outputs, arrays of shape ``(m,)``, the moments of
        each output's target and mixture.
        """
        w = self._normalized_weight()
        gates, outputs = gates_and_experts(self.X, params, spec, self.x_norms)
        if params.n_outputs is None:
            return self._moments(w, self.y, np.einsum("nk,nk->n", gates, outputs))
        moments = [self._moments(w, self.y[:, j],
                                 np.einsum("nk,nk->n", gates, outputs[:, :, j]))
                   for j in range(params.n_outputs)]
        return tuple(np.array(column) for column in zip(*moments))

    @staticmethod
    def _moments(w, y, mix):
        y_mean = _mean(w, y)
        mix_mean = _mean(w, mix)
        var = _mean(w, (mix - mix_mean) ** 2)
        cov = _mean(w, (mix - mix_mean) * (y - y_mean))
        return y_mean, mix_mean, var, cov

    def gated_squared_residuals(self, params, spec):
        """``(k,)`` sums ``sum_n w_n g_i(x_n) |y_n - f(x_n)|^2`` (not normalised).

        With several outputs the squared residuals are summed over the outputs.
        """
        gates, outputs = gates_and_experts(self.X, params, spec, self.x_norms)
        residual = self.y - combine_outputs(gates, outputs, params)
        squares = residual ** 2 if residual.ndim == 1 else np.sum(residual ** 2, axis=1)
        return np.einsum("n,nk->k", self.sample_weight * squares, gates)
