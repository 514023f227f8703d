"""Plain NumPy formulas of the user guide (doc/user_guide/model.rst), written independently of the kernels."""

import numpy as np
from scipy.special import erf


def scores(X, gate_coef, gate_intercept, router, tau1=1.0, tau2=1.0, temperature=1.0):
    dots = X @ gate_coef.T
    if router == "linear":
        kappa = dots
    else:
        if router == "cosine":
            tau1 = tau2 = 0.0
        denom = np.outer(np.linalg.norm(X, axis=1) + tau2,
                         np.linalg.norm(gate_coef, axis=1) + tau1)
        with np.errstate(invalid="ignore", divide="ignore"):
            kappa = np.where(denom > 0, dots / denom, 0.0)
    return kappa / temperature + gate_intercept


def gates(s, top_k=None):
    s = np.array(s, dtype=float)
    if top_k is not None:
        # keep the K largest (stable: lower index wins ties)
        order = np.argsort(-s, axis=1, kind="stable")
        mask = np.zeros_like(s, dtype=bool)
        np.put_along_axis(mask, order[:, :top_k], True, axis=1)
        s = np.where(mask, s, -np.inf)
    e = np.exp(s - s.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


ACTIVATIONS = {
    "linear": lambda z: z,
    "tanh": np.tanh,
    "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
    "gelu": lambda z: 0.5 * z * (1 + erf(z / np.sqrt(2))),
}


def experts(X, expert_coef, expert_intercept, expert):
    return ACTIVATIONS[expert](X @ expert_coef.T + expert_intercept)


def predict(X, p, router, expert, tau1=1.0, tau2=1.0, temperature=1.0, top_k=None):
    g = gates(scores(X, p.gate_coef, p.gate_intercept, router, tau1, tau2, temperature), top_k)
    h = experts(X, p.expert_coef, p.expert_intercept, expert)
    return p.output_intercept + p.output_scale * (g * h).sum(axis=1)


def classifier_log_proba(X, gate_coef, gate_intercept, expert_coef, expert_intercept,
                         router, tau1=1.0, tau2=1.0, temperature=1.0, top_k=None):
    """``log p(c | x) = log sum_i g_i softmax(A_i x + b_i)_c``, shape ``(n, C)``.

    ``expert_coef`` is ``(k, C, d)``; the sum over experts is formed directly
    (no log-sum-exp), so keep the fixtures away from underflow.
    """
    g = gates(scores(X, gate_coef, gate_intercept, router, tau1, tau2, temperature), top_k)
    logits = np.einsum("kcd,nd->nkc", expert_coef, X) + expert_intercept
    pi = np.exp(logits - logits.max(axis=2, keepdims=True))
    pi /= pi.sum(axis=2, keepdims=True)
    return np.log(np.einsum("nk,nkc->nc", g, pi)), g


def classifier_nll(X, y, sample_weight, *params, **kwargs):
    """Weighted mean of ``-log p(y_n | x_n)``."""
    log_proba, _ = classifier_log_proba(X, *params, **kwargs)
    picked = log_proba[np.arange(len(y)), y]
    return -np.sum(sample_weight * picked) / np.sum(sample_weight)


def predict_outputs(X, gate_coef, gate_intercept, expert_coef, expert_intercept,
                    output_scale, output_intercept, router, expert, tau1=1.0, tau2=1.0,
                    temperature=1.0, top_k=None):
    """``f_j(x) = c_j + s_j sum_i g_i(x) h(A_i[j] . x + b_i[j])``, shape ``(n, m)``.

    ``expert_coef`` is ``(k, m, d)``, ``expert_intercept`` ``(k, m)``, the
    output scale and intercept ``(m,)``: one set of gates for every output.
    """
    g = gates(scores(X, gate_coef, gate_intercept, router, tau1, tau2, temperature), top_k)
    h = ACTIVATIONS[expert](np.einsum("kmd,nd->nkm", expert_coef, X) + expert_intercept)
    return output_intercept + output_scale * np.einsum("nk,nkm->nm", g, h)


def least_squares_loss(X, Y, sample_weight, gate_coef, gate_intercept, expert_coef,
                       expert_intercept, output_scale, output_intercept, router, expert,
                       alpha=0.0, **kwargs):
    """Weighted mean over rows of half the sum of squared residuals over outputs, plus ridge.

    The ridge ``alpha/2 |A|^2`` is on every output's expert coefficients, and on
    the gate coefficients too under the linear router.
    """
    residual = Y - predict_outputs(X, gate_coef, gate_intercept, expert_coef,
                                   expert_intercept, output_scale, output_intercept,
                                   router, expert, **kwargs)
    loss = 0.5 * np.sum(sample_weight[:, None] * residual ** 2) / np.sum(sample_weight)
    loss += 0.5 * alpha * np.sum(expert_coef ** 2)
    if router == "linear":
        loss += 0.5 * alpha * np.sum(gate_coef ** 2)
    return loss
