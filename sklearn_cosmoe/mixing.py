r"""Mixing measures: a mixture of experts' parameters as the theory sees them.

A mixture of ``k`` experts is the discrete measure

.. math::

    G = \sum_{i=1}^{k} \exp(\beta_{0i})\, \delta_{(\beta_{1i}, a_i, b_i)},

and the data determine it only up to the transformations of the user guide's
:ref:`identifiability-transformations` (permutation of the experts, a common
shift of the :math:`\beta_{0i}`, the flat directions of each router, the
sign of odd experts).  The *canonical form* (:ref:`canonical-form`) removes
them:

.. math::

    \pi_i = \operatorname{softmax}(\beta_0)_i, \qquad
    \tilde u_i = u_i - \sum_j \pi_j u_j, \qquad
    \omega_i = (\tilde u_i, a_i, b_i),

with the gate atom :math:`u_i = \beta_{1i} / (\|\beta_{1i}\| + \tau_1)`
(perturbed cosine router), :math:`\beta_{1i} / \|\beta_{1i}\|` (cosine) or
:math:`\beta_{1i}` (linear), and the expert parameters :math:`(a_i, b_i)`
taken with the sign that makes the output scale ``s`` non-negative
(``tanh`` and ``sigmoid`` experts).  Every parameter comparison of the
package (:func:`sklearn_cosmoe.metrics.voronoi_loss`) works on canonical
forms by default; the *raw form* (:ref:`raw-voronoi-loss`) keeps
:math:`\beta_{1i}` itself, as the paper's Voronoi loss is written.

Feed-forward experts carry an output scale ``s`` and intercept ``c``
common to all experts, :math:`f(x) = c + s \sum_i g_i(x) h(a_i^\top x + b_i)`.
They are kept with the measure (so that it describes the model completely)
but are not part of its atoms; the truth of the theory has ``s = 1`` and
``c = 0``.

The module needs no estimator class: :meth:`MixingMeasure.from_estimator`
reads a fitted estimator's attributes (``gate_coef_``, ``router``, ...).
"""

from dataclasses import dataclass

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._experts import EXPERTS
from ._model import MoEParams
from ._routers import ROUTERS, gate_atoms

#: Fitted attributes and hyperparameters that :meth:`MixingMeasure.from_estimator` reads.
_ESTIMATOR_ATTRIBUTES = ("gate_coef_", "gate_intercept_", "expert_coef_",
                         "expert_intercept_", "output_scale_", "output_intercept_",
                         "router", "tau1", "expert")
#: Experts with h(-z) = -h(z) (linear, tanh) or 1 - h(z) (sigmoid): (s, a, b) and
#: (-s, -a, -b) give the same model, with c -> c + s for the sigmoid.  (A
#: fitted linear expert has s = 1; a measure built by hand may not.)
_ODD_EXPERTS = ("linear", "tanh", "sigmoid")


@dataclass(frozen=True)
class CanonicalMeasure:
    """Canonical (or raw) form of a mixing measure (:ref:`canonical-form`).

    Parameters
    ----------
    weights : ndarray of shape (n_experts,)
        :math:`\\pi = \\operatorname{softmax}(\\beta_0)`; sums to one.
    gate_atoms : ndarray of shape (n_experts, n_features)
        Centred gate atoms :math:`\\tilde u_i = u_i - \\sum_j \\pi_j u_j`
        (raw form: :math:`\\beta_{1i}`, centred under the linear router only).
    expert_coef : ndarray of shape (n_experts, n_features)
        :math:`a_i`, with the sign of the odd-expert symmetry fixed.
    expert_intercept : ndarray of shape (n_experts,)
        :math:`b_i`, with the sign of the odd-expert symmetry fixed.
    """

    weights: np.ndarray
    gate_atoms: np.ndarray
    expert_coef: np.ndarray
    expert_intercept: np.ndarray

    @property
    def atoms(self):
        """Atoms :math:`\\omega_i = (\\tilde u_i, a_i, b_i)`, shape ``(n_experts, 2 d + 1)``."""
        return np.hstack([self.gate_atoms, self.expert_coef,
                          self.expert_intercept[:, None]])


class MixingMeasure:
    r"""Parameters of a mixture of experts, as a mixing measure.

    Holds plain float64 copies of the arrays (the caller's arrays are never
    modified) and the two choices that give them meaning: the router (with
    its ``tau1``) and the expert family.

    Parameters
    ----------
    gate_coef : array-like of shape (n_experts, n_features)
        :math:`\beta_{1i}`.
    gate_intercept : array-like of shape (n_experts,)
        :math:`\beta_{0i}`.
    expert_coef : array-like of shape (n_experts, n_features)
        :math:`a_i`.
    expert_intercept : array-like of shape (n_experts,)
        :math:`b_i`.
    router : {"perturbed_cosine", "cosine", "linear"}, default="perturbed_cosine"
    tau1 : float, default=1.0
        Perturbation of :math:`\|\beta_{1i}\|`; must be > 0 for the perturbed
        cosine router (ignored by the others).
    expert : {"linear", "tanh", "sigmoid", "gelu"}, default="linear"
    output_scale : float, default=1.0
        ``s``, common to all experts (not part of the atoms).
    output_intercept : float, default=0.0
        ``c``, common to all experts (not part of the atoms).

    Examples
    --------
    >>> from sklearn_cosmoe.mixing import MixingMeasure
    >>> G = MixingMeasure([[3.0, 0.0], [0.0, -1.0]], [0.0, 0.0],
    ...                   [[1.0, 1.0], [-1.0, 0.5]], [0.0, 0.2])
    >>> G.canonical().weights
    array([0.5, 0.5])
    >>> G.canonical().gate_atoms
    array([[ 0.375,  0.25 ],
           [-0.375, -0.25 ]])
    """

    def __init__(self, gate_coef, gate_intercept, expert_coef, expert_intercept, *,
                 router="perturbed_cosine", tau1=1.0, expert="linear",
                 output_scale=1.0, output_intercept=0.0):
        if router not in ROUTERS:
            raise ValueError(f"router must be one of {sorted(ROUTERS)}; got {router!r}.")
        if expert not in EXPERTS:
            raise ValueError(f"expert must be one of {sorted(EXPERTS)}; got {expert!r}.")
        tau1 = float(tau1)
        if router == "perturbed_cosine" and not tau1 > 0:
            raise ValueError(
                f"tau1 must be > 0 with router='perturbed_cosine'; got tau1={tau1}."
            )
        self.gate_coef = _as_array(gate_coef, "gate_coef", ndim=2)
        k, d = self.gate_coef.shape
        if k < 1 or d < 1:
            raise ValueError(
                "gate_coef must have shape (n_experts, n_features) with both >= 1; "
                f"got {self.gate_coef.shape}."
            )
        self.gate_intercept = _as_array(gate_intercept, "gate_intercept", ndim=1)
        self.expert_coef = _as_array(expert_coef, "expert_coef", ndim=2)
        self.expert_intercept = _as_array(expert_intercept, "expert_intercept", ndim=1)
        for name, expected in (("gate_intercept", (k,)), ("expert_coef", (k, d)),
                               ("expert_intercept", (k,))):
            if getattr(self, name).shape != expected:
                raise ValueError(
                    f"{name} must have shape {expected} to match gate_coef "
                    f"{(k, d)}; got {getattr(self, name).shape}."
                )
        self.output_scale = _as_scalar(output_scale, "output_scale")
        self.output_intercept = _as_scalar(output_intercept, "output_intercept")
        self.router = router
        self.tau1 = tau1
        self.expert = expert

    @property
    def n_experts(self):
        """Number of atoms ``k``."""
        return self.gate_coef.shape[0]

    @property
    def n_features(self):
        """Input dimension ``d``."""
        return self.gate_coef.shape[1]

    @classmethod
    def from_estimator(cls, estimator):
        """The mixing measure of a fitted estimator, read from its attributes.

        Any fitted object with the attributes of
        :class:`~sklearn_cosmoe.CosineMoERegressor` will do (duck typing):
        ``gate_coef_``, ``gate_intercept_``, ``expert_coef_``,
        ``expert_intercept_``, ``output_scale_``, ``output_intercept_`` and
        the hyperparameters ``router``, ``tau1`` and ``expert``.

        Parameters
        ----------
        estimator : CosineMoERegressor
            Fitted.

        Returns
        -------
        MixingMeasure

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If ``estimator`` is an estimator that is not fitted yet.
        ValueError
            If ``estimator`` lacks one of the attributes above, or was fitted
            to several outputs.
        """
        if not hasattr(estimator, "fit"):
            raise ValueError(
                "estimator must be a fitted CosineMoERegressor (an estimator with "
                f"the attributes {_ESTIMATOR_ATTRIBUTES}); got "
                f"{type(estimator).__name__}."
            )
        check_is_fitted(estimator)
        missing = [name for name in _ESTIMATOR_ATTRIBUTES if not hasattr(estimator, name)]
        if missing:
            raise ValueError(
                "estimator must be a fitted CosineMoERegressor; "
                f"{type(estimator).__name__} has no attribute(s) {missing}."
            )
        if np.ndim(estimator.expert_coef_) == 3:
            raise ValueError(
                "A mixing measure has one output; estimator was fitted to "
                f"{np.shape(estimator.expert_coef_)[1]} outputs (a 2-d y). Fit one "
                "estimator per output to compare it with a mixing measure."
            )
        return cls(estimator.gate_coef_, estimator.gate_intercept_,
                   estimator.expert_coef_, estimator.expert_intercept_,
                   router=estimator.router, tau1=estimator.tau1,
                   expert=estimator.expert, output_scale=estimator.output_scale_,
                   output_intercept=estimator.output_intercept_)

    @classmethod
    def from_params(cls, params, spec):
        """The mixing measure of model-layer parameters.

        Parameters
        ----------
        params : sklearn_cosmoe._model.MoEParams
            Parameters of the model layer (copied).
        spec : sklearn_cosmoe._model.MoESpec
            Gives the router, ``tau1`` and the expert family.

        Returns
        -------
        MixingMeasure
        """
        return cls(params.gate_coef, params.gate_intercept, params.expert_coef,
                   params.expert_intercept, router=spec.router, tau1=spec.tau1,
                   expert=spec.expert, output_scale=params.output_scale,
                   output_intercept=params.output_intercept)

    def to_params(self):
        """Copies of the arrays as :class:`sklearn_cosmoe._model.MoEParams`.

        Returns
        -------
        MoEParams
            What :func:`sklearn_cosmoe._model.predict` and the solvers take.
        """
        return MoEParams(self.gate_coef.copy(), self.gate_intercept.copy(),
                         self.expert_coef.copy(), self.expert_intercept.copy(),
                         self.output_scale, self.output_intercept)

    def canonical(self):
        r"""Canonical form: weights, centred gate atoms and atoms (:ref:`canonical-form`).

        .. math::

            \pi = \operatorname{softmax}(\beta_0), \qquad
            \tilde u_i = u_i - \textstyle\sum_j \pi_j u_j, \qquad
            \omega_i = (\tilde u_i, \epsilon a_i, \epsilon b_i),

        with :math:`\epsilon = -1` for ``linear``, ``tanh`` and ``sigmoid``
        experts with a negative output scale and :math:`\epsilon = 1`
        otherwise.

        It is the same for every parameter set that gives the same model by a
        permutation of the experts, a common shift of :math:`\beta_0`, a
        rescaling of a :math:`\beta_{1i}` (cosine router), a common shift of
        the gate atoms (all routers; it must keep them in the unit ball or on
        the sphere for the cosine routers) or the sign symmetry of odd
        experts, :math:`(s, a, b) \to (-s, -a, -b)` (``linear``, ``tanh``) and
        :math:`(s, c, a, b) \to (-s, c + s, -a, -b)` (``sigmoid``), up to the
        order of the atoms.

        Returns
        -------
        CanonicalMeasure
        """
        weights = self._weights()
        u = gate_atoms(self.gate_coef, self.router, self.tau1)
        return self._form(weights, u - weights @ u)

    def raw(self, reference=None):
        r"""Raw form, the parameters of the paper's Voronoi loss (:ref:`raw-voronoi-loss`).

        The weights are :math:`\exp(\beta_{0i})` with the common shift of
        :math:`\beta_0` removed, :math:`\pi = \operatorname{softmax}(\beta_0)`;
        the gate parameters are :math:`\beta_{1i}` themselves, with the
        translation of the gates removed where the router has one: centred,
        :math:`\beta_{1i} - \sum_j \pi_j \beta_{1j}`, under the linear router;
        under the perturbed cosine router, given a ``reference``, the gate
        atoms :math:`u_i` are shifted together so that their weighted mean is
        the reference's, and mapped back,
        :math:`\beta_{1i} = v_i \tau_1 / (1 - \|v_i\|)` (unshifted if a shifted
        atom would leave the unit ball); under the cosine router they are
        taken as they are.  The expert parameters are those of
        :meth:`canonical`.  Unlike the canonical form it sees the length of a
        cosine router's :math:`\beta_{1i}`, which the data do not determine.

        Parameters
        ----------
        reference : MixingMeasure, default=None
            The measure whose normalisation the perturbed cosine router's gate
            atoms are shifted to (the truth, in a loss); None: no shift.

        Returns
        -------
        CanonicalMeasure
        """
        weights = self._weights()
        b1 = self.gate_coef
        if self.router == "linear":
            return self._form(weights, b1 - weights @ b1)
        if self.router == "perturbed_cosine" and reference is not None:
            u = gate_atoms(b1, self.router, self.tau1)
            target = reference._weights() @ gate_atoms(reference.gate_coef,
                                                       reference.router, reference.tau1)
            v = u - weights @ u + target
            norms = np.linalg.norm(v, axis=1, keepdims=True)
            if np.all(norms < 1):
                return self._form(weights, v * self.tau1 / (1 - norms))
        return self._form(weights, b1.copy())

    def _weights(self):
        weights = np.exp(self.gate_intercept - self.gate_intercept.max())
        return weights / weights.sum()

    def _form(self, weights, gate_atoms):
        sign = -1.0 if self.expert in _ODD_EXPERTS and self.output_scale < 0 else 1.0
        return CanonicalMeasure(weights=weights, gate_atoms=gate_atoms,
                                expert_coef=sign * self.expert_coef,
                                expert_intercept=sign * self.expert_intercept)

    def __repr__(self):
        tau = f", tau1={self.tau1:g}" if self.router == "perturbed_cosine" else ""
        return (f"MixingMeasure(n_experts={self.n_experts}, "
                f"n_features={self.n_features}, router={self.router!r}{tau}, "
                f"expert={self.expert!r})")


def _as_array(value, name, ndim):
    array = np.array(value, dtype=np.float64)  # always a copy
    if array.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-d array; got {array.ndim} dimensions.")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite; it contains NaN or inf.")
    return array


def _as_scalar(value, name):
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite; got {value}.")
    return value
