"""ONNX graph pieces of the mixture: router scores, gates, experts, mixture.

Used by :mod:`sklearn_cosmoe.onnx` (which registers the converters with
skl2onnx); nothing else in the package imports this module.  Each function
adds nodes to a skl2onnx container through a :class:`GraphBuilder` and
returns the name of the result, so the graph mirrors the kernels of
:mod:`sklearn_cosmoe._jit_tiles` step by step (user guide, :ref:`deployment`):

* scores: ``beta1_i . x`` by a ``MatMul`` with the gate atoms
  ``beta1_i / (|beta1_i| + tau1)`` (0 where that denominator is 0, as
  :func:`~sklearn_cosmoe._jit_tiles.gate_inverse_norms`), times
  ``1 / ((|x| + tau2) T)`` from ``ReduceL2 + Add + Div``, where a zero
  denominator gives 0 (``Where``): a zero row under the cosine router has a
  cosine term of 0, never NaN;
* gates: ``Softmax``, or ``TopK + Softmax + ScatterElements`` for top-K gates;
  ``TopK`` breaks ties in favour of the lower index, as the kernels do;
* experts: ``MatMul + Add`` and ``Tanh``, ``Sigmoid`` or ``z Phi(z)`` with
  ``Erf`` (float) or, in double graphs, where ONNX Runtime has no ``Erf``,
  Cody's rational approximations of ``erf`` (:func:`erf_double`);
* mixture: ``Mul + ReduceSum`` over the experts.
"""

import numpy as np
from onnx import TensorProto, numpy_helper

# ONNX opsets where the reductions' ``axes`` moved from an attribute to an input
_AXES_INPUT_SINCE = {"ReduceSum": 13, "ReduceL2": 18}
# the oldest opset the converters write: TopK with K as an input (10) and
# ScatterElements (11)
MIN_OPSET = 11

# W. J. Cody, "Rational Chebyshev approximations for the error function",
# Math. Comp. 23 (1969) 631-637: erf on |x| <= 0.46875, erfc on
# 0.46875 < |x| <= 4 and on |x| > 4 (coefficients of his CALERF routine)
_ERF_THRESHOLD = 0.46875
_ERFC_MIDDLE_END = 4.0
_ERF_A = (3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02,
          3.20937758913846947e03, 1.85777706184603153e-1)
_ERF_B = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03,
          2.84423683343917062e03)
_ERF_C = (5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01,
          2.98635138197400131e02, 8.81952221241769090e02, 1.71204761263407058e03,
          2.05107837782607147e03, 1.23033935479799725e03, 2.15311535474403846e-8)
_ERF_D = (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02,
          1.62138957456669019e03, 3.29079923573345963e03, 4.36261909014324716e03,
          3.43936767414372164e03, 1.23033935480374942e03)
_ERF_P = (3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1,
          1.60837851487422766e-2, 6.58749161529837803e-4, 1.63153871373020978e-2)
_ERF_Q = (2.56852019228982242e00, 1.87295284992346725e00, 5.27905102951428412e-1,
          6.05183413124413191e-2, 2.33520497626869185e-3)
_INV_SQRT_PI = 5.6418958354775628695e-1
# erfc(x) = exp(-x^2) r(x) with x^2 split as ysq^2 + (x - ysq)(x + ysq),
# ysq = floor(16 x) / 16, so that exp(-ysq^2) is accurate (Cody)
_ERFC_SPLIT = 16.0
# erfc(x) underflows beyond this: erf(x) = 1 (which also holds at infinity)
_ERFC_ZERO_FROM = 26.543
_SQRT2 = float(np.sqrt(2.0))

_ONNX_TYPES = {np.dtype(np.float32): TensorProto.FLOAT,
               np.dtype(np.float64): TensorProto.DOUBLE,
               np.dtype(np.int64): TensorProto.INT64}


class GraphBuilder:
    """Adds nodes and initializers to a skl2onnx container in one float type.

    Parameters
    ----------
    scope, container : skl2onnx's Scope and ModelComponentContainer
    dtype : numpy float dtype of the graph (``float32`` or ``float64``)
    opset : int
        The main domain's target opset.
    """

    def __init__(self, scope, container, dtype, opset):
        self.scope = scope
        self.container = container
        self.dtype = np.dtype(dtype)
        self.opset = opset

    @property
    def double(self):
        return self.dtype == np.float64

    def const(self, value, hint="c", dtype=None):
        """An initializer holding ``value`` (in the graph's float type unless ``dtype``)."""
        array = np.asarray(value, dtype=self.dtype if dtype is None else dtype)
        name = self.scope.get_unique_variable_name(hint)
        self.container.add_initializer(name, _ONNX_TYPES[array.dtype], list(array.shape),
                                       array.ravel().tolist())
        return name

    def strings(self, values, hint="classes"):
        """An initializer of strings."""
        name = self.scope.get_unique_variable_name(hint)
        self.container.add_initializer(name, TensorProto.STRING, [len(values)],
                                       [str(v).encode("utf-8") for v in values])
        return name

    def node(self, op_type, inputs, hint=None, n_outputs=1, output=None, **attrs):
        """Add a node; returns its output name (a list for ``n_outputs > 1``)."""
        if output is not None:
            outputs = [output]
        else:
            outputs = [self.scope.get_unique_variable_name(hint or op_type.lower())
                       for _ in range(n_outputs)]
        self.container.add_node(op_type, list(inputs), outputs,
                                name=self.scope.get_unique_operator_name(op_type), **attrs)
        return outputs[0] if n_outputs == 1 else outputs

    def reduce(self, op_type, x, axis, keepdims):
        """``ReduceSum`` or ``ReduceL2`` over one axis, in the form of the target opset."""
        if self.opset >= _AXES_INPUT_SINCE[op_type]:
            return self.node(op_type, [x, self.const([axis], "axes", np.int64)],
                             keepdims=keepdims)
        return self.node(op_type, [x], axes=[axis], keepdims=keepdims)

    def reshape(self, x, shape):
        return self.node("Reshape", [x, self.const(shape, "shape", np.int64)])

    # elementwise shorthands
    def add(self, a, b):
        return self.node("Add", [a, b])

    def mul(self, a, b):
        return self.node("Mul", [a, b])

    def div(self, a, b):
        return self.node("Div", [a, b])

    def where(self, condition, a, b):
        return self.node("Where", [condition, a, b])


def gate_scale(gate_coef, router, tau1):
    """``1 / (|beta1_i| + tau1)`` per expert, 0 where that is 0 (1 for the linear router).

    As :func:`sklearn_cosmoe._jit_tiles.gate_inverse_norms`.
    """
    gate_coef = np.asarray(gate_coef, dtype=np.float64)
    if router == "linear":
        return np.ones(gate_coef.shape[0])
    norms = np.sqrt(np.einsum("ij,ij->i", gate_coef, gate_coef))
    q = norms + (tau1 if router == "perturbed_cosine" else 0.0)
    return np.divide(1.0, q, out=np.zeros_like(q), where=q != 0.0)


def router_scores(g, X, gate_coef, gate_intercept, router, tau1, tau2, temperature):
    """Scores ``s_i(x)``, shape ``(n, k)`` (module docstring)."""
    inv_temp = 1.0 / float(temperature)
    atoms = np.asarray(gate_coef, dtype=np.float64) * gate_scale(gate_coef, router,
                                                                 tau1)[:, None]
    if router == "linear":
        # dot_i / T: the temperature goes into the coefficients
        dots = g.node("MatMul", [X, g.const((atoms * inv_temp).T, "gate_coef")])
        return g.add(dots, g.const(gate_intercept, "gate_intercept"))
    dots = g.node("MatMul", [X, g.const(atoms.T, "gate_atoms")])
    denom = g.reduce("ReduceL2", X, axis=1, keepdims=1)
    tau = float(tau2) if router == "perturbed_cosine" else 0.0
    if tau != 0.0:
        denom = g.add(denom, g.const([tau], "tau2"))
    inv_c = g.div(g.const([inv_temp], "inv_temperature"), denom)
    if tau == 0.0:
        # a zero row: the kernels' zero-denominator rule, a cosine term of 0
        is_zero = g.node("Equal", [denom, g.const([0.0], "zero")])
        inv_c = g.where(is_zero, g.const([0.0], "zero"), inv_c)
    return g.add(g.mul(dots, inv_c), g.const(gate_intercept, "gate_intercept"))


def gates(g, scores, n_experts, top_k):
    """Gate weights ``(n, k)``: the softmax of the scores, or of the ``top_k`` largest."""
    if top_k is None or not 0 < top_k < n_experts:
        return g.node("Softmax", [scores], axis=1)
    values, indices = g.node("TopK", [scores, g.const([top_k], "top_k", np.int64)],
                             n_outputs=2, axis=1, largest=1, sorted=1)
    top_gates = g.node("Softmax", [values], axis=1)
    zero = np.zeros(1, dtype=g.dtype)
    zeros = g.node("ConstantOfShape", [g.node("Shape", [scores])],
                   value=numpy_helper.from_array(zero, "zero"))
    return g.node("ScatterElements", [zeros, indices, top_gates], axis=1)


def affine(g, X, coef, intercept, hint):
    """``X @ coef.T + intercept`` for ``coef`` of shape ``(rows, d)``."""
    coef = np.asarray(coef, dtype=np.float64)
    product = g.node("MatMul", [X, g.const(coef.T, hint + "_coef")])
    return g.add(product, g.const(np.ravel(intercept), hint + "_intercept"))


def activation(g, z, expert):
    """The expert's ``h(z)`` (:mod:`sklearn_cosmoe._experts`), elementwise."""
    if expert == "linear":
        return z
    if expert == "tanh":
        return g.node("Tanh", [z])
    if expert == "sigmoid":
        return g.node("Sigmoid", [z])
    # GELU, exact: z * (0.5 * (1 + erf(z / sqrt 2))), in the kernels' order
    u = g.div(z, g.const([_SQRT2], "sqrt2"))
    erf = erf_double(g, u) if g.double else g.node("Erf", [u])
    cdf = g.mul(g.const([0.5], "half"), g.add(g.const([1.0], "one"), erf))
    return g.mul(z, cdf)


def _polynomial(g, x, leading, coefficients, first):
    """Cody's Horner loops: ``acc = first``; ``acc = (acc + c) * x`` for each ``c``."""
    acc = first if leading is None else g.mul(g.const([leading], "erf_coef"), x)
    for c in coefficients:
        acc = g.mul(g.add(acc, g.const([c], "erf_coef")), x)
    return acc


def erf_double(g, x):
    """``erf(x)`` in float64 from elementwise ONNX operators (Cody, 1969).

    Within a few units in the last place of the correctly rounded ``erf``
    (measured against :func:`math.erf` by the tests): ONNX Runtime has no
    double ``Erf`` kernel.  All three of Cody's ranges are computed for
    every element and ``Where`` picks the one that applies.
    """
    def c(value):
        return g.const([value], "erf_const")

    y = g.node("Abs", [x])
    ysq_full = g.mul(y, y)
    # |x| <= 0.46875: erf(x) = x P(x^2) / Q(x^2)
    num = _polynomial(g, ysq_full, _ERF_A[4], _ERF_A[:3], None)
    den = _polynomial(g, ysq_full, None, _ERF_B[:3], ysq_full)
    small = g.div(g.mul(x, g.add(num, c(_ERF_A[3]))), g.add(den, c(_ERF_B[3])))
    # 0.46875 < |x| <= 4: erfc(|x|) = exp(-x^2) P(|x|) / Q(|x|)
    num = _polynomial(g, y, _ERF_C[8], _ERF_C[:7], None)
    den = _polynomial(g, y, None, _ERF_D[:7], y)
    middle = g.div(g.add(num, c(_ERF_C[7])), g.add(den, c(_ERF_D[7])))
    # |x| > 4: erfc(|x|) = exp(-x^2) / |x| (1/sqrt(pi) + P(1/x^2) / (x^2 Q(1/x^2)))
    z = g.node("Reciprocal", [ysq_full])
    num = _polynomial(g, z, _ERF_P[5], _ERF_P[:4], None)
    den = _polynomial(g, z, None, _ERF_Q[:4], z)
    tail = g.div(g.mul(z, g.add(num, c(_ERF_P[4]))), g.add(den, c(_ERF_Q[4])))
    tail = g.div(g.node("Sub", [c(_INV_SQRT_PI), tail]), y)
    ratio = g.where(g.node("Greater", [y, c(_ERFC_MIDDLE_END)]), tail, middle)
    ysq = g.div(g.node("Floor", [g.mul(y, c(_ERFC_SPLIT))]), c(_ERFC_SPLIT))
    rest = g.mul(g.node("Sub", [y, ysq]), g.add(y, ysq))
    exp_a = g.node("Exp", [g.node("Neg", [g.mul(ysq, ysq)])])
    exp_b = g.node("Exp", [g.node("Neg", [rest])])
    erfc = g.mul(g.mul(exp_a, exp_b), ratio)
    erfc = g.where(g.node("Greater", [y, c(_ERFC_ZERO_FROM)]), c(0.0), erfc)
    large = g.add(g.node("Sub", [c(0.5), erfc]), c(0.5))
    large = g.where(g.node("Less", [x, c(0.0)]), g.node("Neg", [large]), large)
    return g.where(g.node("Greater", [y, c(_ERF_THRESHOLD)]), large, small)


def mixture(g, gate_weights, outputs, n_experts, n_outputs):
    """``sum_i g_i h_i``: ``(n, 1)`` for one output, ``(n, m)`` for ``m``.

    ``outputs`` is ``(n, k)`` for one output and ``(n, k m)`` (expert-major)
    for ``m``.
    """
    if n_outputs is None:
        return g.reduce("ReduceSum", g.mul(gate_weights, outputs), axis=1, keepdims=1)
    weights = g.reshape(gate_weights, [-1, n_experts, 1])
    outputs = g.reshape(outputs, [-1, n_experts, n_outputs])
    return g.reduce("ReduceSum", g.mul(weights, outputs), axis=1, keepdims=0)
