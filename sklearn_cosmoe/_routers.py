"""Routers: the score each expert gets for an input.

The user guide's :ref:`routers` (doc/user_guide/model.rst) defines them:

======================  ============================================================
router                  score :math:`s_i(x)`
======================  ============================================================
``linear``              :math:`\\beta_{1i}^\\top x / T + \\beta_{0i}`
``cosine``              :math:`\\dfrac{\\beta_{1i}^\\top x}{\\|\\beta_{1i}\\| \\|x\\|} / T + \\beta_{0i}`
``perturbed_cosine``    :math:`\\dfrac{\\beta_{1i}^\\top x}{(\\|\\beta_{1i}\\| + \\tau_1)(\\|x\\| + \\tau_2)} / T + \\beta_{0i}`
======================  ============================================================

``T`` is the temperature (1 in the paper).  A zero denominator (a zero row
under the cosine router) gives a cosine term of 0.  The gates are the softmax
of the scores, or the softmax over the ``top_k`` largest scores.
"""

import numpy as np

from ._kernels import ROUTER_COSINE, ROUTER_LINEAR, ROUTER_PERTURBED_COSINE

ROUTERS = {
    "linear": ROUTER_LINEAR,
    "cosine": ROUTER_COSINE,
    "perturbed_cosine": ROUTER_PERTURBED_COSINE,
}


def gate_atoms(gate_coef, router, tau1):
    """Gate atoms ``u_i``, the part of ``beta1_i`` that the gates can see.

    ``beta1_i / (|beta1_i| + tau1)`` for the perturbed cosine router (a point
    of the open unit ball), ``beta1_i / |beta1_i|`` for the cosine router
    (a zero vector stays zero) and ``beta1_i`` for the linear router
    (user guide, :ref:`canonical-form`).

    Parameters
    ----------
    gate_coef : ndarray of shape (n_experts, n_features)
    router : {"linear", "cosine", "perturbed_cosine"}
    tau1 : float

    Returns
    -------
    ndarray of shape (n_experts, n_features)
    """
    gate_coef = np.asarray(gate_coef, dtype=np.float64)
    if router == "linear":
        return gate_coef.copy()
    norms = np.linalg.norm(gate_coef, axis=1, keepdims=True)
    denom = norms + (tau1 if router == "perturbed_cosine" else 0.0)
    return np.divide(gate_coef, denom, out=np.zeros_like(gate_coef), where=denom > 0)


def gate_coef_of_atoms(atoms, tau1):
    """The perturbed cosine router's ``beta1_i`` of its atoms: the inverse of :func:`gate_atoms`.

    ``beta1_i = tau1 u_i / (1 - |u_i|)`` for atoms ``u_i`` of the open unit
    ball (user guide :ref:`canonical-form`).

    Parameters
    ----------
    atoms : ndarray of shape (n_experts, n_features), rows of norm below 1
    tau1 : float

    Returns
    -------
    ndarray of shape (n_experts, n_features)
    """
    atoms = np.asarray(atoms, dtype=np.float64)
    norms = np.linalg.norm(atoms, axis=1, keepdims=True)
    if np.any(norms >= 1.0):
        raise ValueError("the perturbed cosine router's atoms lie in the open unit ball; "
                         f"got a norm of {float(norms.max())}.")
    return atoms * (tau1 / (1.0 - norms))
