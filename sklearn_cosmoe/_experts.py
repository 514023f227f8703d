"""Experts: the small models that the router mixes.

The user guide's :ref:`experts` (doc/user_guide/model.rst) defines them:

Each expert ``i`` computes :math:`h(a_i^\\top x + b_i)` with

==========  =============================================
expert      :math:`h(z)`
==========  =============================================
``linear``  :math:`z`
``tanh``    :math:`\\tanh z`
``sigmoid`` :math:`1 / (1 + e^{-z})`
``gelu``    :math:`z\\,\\Phi(z)` (exact, with the normal CDF)
==========  =============================================

The feed-forward experts are bounded (or one-sided), so the prediction carries
a learned output scale and intercept, :math:`f(x) = c + s \\sum_i g_i(x) h_i(x)`;
for linear experts ``s = 1`` and ``c = 0`` are fixed.  ``tanh`` and
``sigmoid`` are odd up to a constant, so the sign of ``s`` is not determined
by the data (user guide, :ref:`identifiability-transformations`).
"""

from ._kernels import EXPERT_GELU, EXPERT_LINEAR, EXPERT_SIGMOID, EXPERT_TANH

EXPERTS = {
    "linear": EXPERT_LINEAR,
    "tanh": EXPERT_TANH,
    "sigmoid": EXPERT_SIGMOID,
    "gelu": EXPERT_GELU,
}

# h(0) and h'(0): the first-order expansion used to start a feed-forward expert
# from the least-squares fit of a linear one.
LINEARISATION = {
    "linear": (0.0, 1.0),
    "tanh": (0.0, 1.0),
    "sigmoid": (0.5, 0.25),
    "gelu": (0.0, 0.5),
}
