"""The perturbed cosine router's fit in its atoms: one ball for each gate.

Under the perturbed cosine router the scores are linear in the atoms ``u_i =
beta_1i / (|beta_1i| + tau1)``, points of the open unit ball (user guide
:ref:`canonical-form`), and the least squares often lie on the ball's
boundary: sharper gates than any finite ``beta_1i`` gives, reached only as
``|beta_1i|`` grows without end.  In ``beta_1i`` that optimum is at
infinity, and every step of a minimiser only doubles ``|beta_1i|``; in the
atoms the objective is smooth up to the boundary, and the fit is a problem
with a bound, ``|u_i| <= ATOM_RADIUS``, whose solution exists.

:class:`AtomProblem` gives a minimiser that problem.  An atom on the sphere
``|u_i| = ATOM_RADIUS`` whose outward slope ``sigma_i = -g_i . u_i / |u_i|``
is positive is *held*: its step keeps to the sphere's tangent plane, and the
model adds the sphere's curvature ``sigma_i / |u_i|`` there, the price of the
return to the sphere (a tangent step ``t`` ends ``|t|^2 / (2 |u_i|)``
inward).  Every other atom moves freely, and a trial point has its atoms
projected onto the ball.  At a point the convergence test certifies, the
gradient vanishes along every direction a step may take and pushes each held
atom outward: the Karush-Kuhn-Tucker conditions of the bound.
"""

import numpy as np
from scipy import linalg

from .._routers import gate_atoms, gate_coef_of_atoms
from ._problem import Problem, router_shape
from ._stationarity import QuadraticModel

#: The atoms' ball is closed at this radius: ``|beta_1i|`` at most about
#: ``1e9 tau1``, where every score is within ``1e-9 / T`` of the boundary's.
ATOM_RADIUS = 1.0 - 1e-9
#: Atoms this close to the radius are on the sphere (rounding of a projection).
ON_SPHERE = 1e-12


class AtomProblem(Problem):
    """:class:`Problem` in the atoms: ``u_i`` in place of ``beta_1i`` (perturbed cosine router).

    The vectors a minimiser sees hold the free entries of ``theta`` with
    each ``beta_1i`` replaced by its atom; :meth:`full` maps them back.
    The router's coefficients are either all free or all fixed.
    """

    def __init__(self, data, theta, shape, spec, free=None, eliminate=False):
        k, d = router_shape(shape)
        z = np.array(theta, dtype=np.float64)
        #: the plain cosine router's atoms are on the unit sphere (an equality)
        self._on_sphere_only = spec.router == "cosine"
        self._radius = 1.0 if self._on_sphere_only else ATOM_RADIUS
        atoms = gate_atoms(z[:k * d].reshape(k, d), spec.router, spec.tau1)
        z[:k * d] = self._onto(atoms).ravel()
        super().__init__(data, z, shape, spec, free, eliminate)
        if self.free[:k * d].all():
            self._atoms = np.arange(k * d).reshape(k, d)
        elif not self.free[:k * d].any():
            self._atoms = np.empty((0, d), dtype=np.intp)
        else:
            raise ValueError("the router's coefficients must be all free or all fixed")

    def _parameters(self, theta):
        if not self._on_sphere_only:  # the cosine router's beta_1i are its atoms
            k, d = self.router_shape
            atoms = theta[:k * d].reshape(k, d)
            theta[:k * d] = gate_coef_of_atoms(atoms, self.spec.tau1).ravel()
        return theta

    def _onto(self, atoms):
        """Rows of ``atoms`` onto the sphere (cosine router) or into the ball."""
        norms = np.linalg.norm(atoms, axis=1, keepdims=True)
        outside = (norms > 0) if self._on_sphere_only else (norms > self._radius)
        return np.where(outside, atoms * (self._radius / np.where(outside, norms, 1.0)),
                        atoms)

    def loss_and_gradient(self, sub):
        """The function minimised and its gradient in the atoms (one Gauss-Newton pass)."""
        grad = self.data.gauss_newton(self.full(sub), self.shape, self.spec, atoms=True)[1]
        return self.loss(sub), grad[self.free]

    def model(self, sub):
        """The objective and its :class:`QuadraticModel` on the directions a step may take."""
        return self._model(sub, atoms=True, subspace=self._tangent)

    def move(self, sub, step):
        """``sub + step`` with every atom projected into the ball (onto the sphere
        under the cosine router)."""
        trial = sub + step
        if self._atoms.size:
            trial[self._atoms] = self._onto(trial[self._atoms])
        return trial

    def _tangent(self, sub, grad):
        """The steps' basis and the sphere's curvature along it, None if no atom is held.

        ``grad`` is the gradient on the free entries, whose first are the atoms.
        """
        size = grad.size
        basis = np.eye(size)
        sphere = np.zeros(size)
        dropped = []
        for rows in self._atoms:
            u = sub[rows]
            norm = np.linalg.norm(u)
            slope = -float(grad[rows] @ u) / norm if norm > 0 else 0.0
            if self._on_sphere_only:
                if norm == 0:
                    continue
            elif norm < self._radius - ON_SPHERE or not slope > 0:
                continue
            basis[np.ix_(rows, rows[1:])] = linalg.null_space(u[None, :] / norm)
            basis[:, rows[0]] = 0.0
            sphere[rows[1:]] = slope / norm
            dropped.append(rows[0])
        if not dropped:
            return None
        keep = np.setdiff1d(np.arange(size), dropped)
        return basis[:, keep], sphere[keep]
