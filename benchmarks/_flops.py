"""FLOP counts (multiply-add = 2 FLOPs; matmuls only, elementwise work not counted).

Shapes: b batch, n length, w model width (input and output features), h heads, e
head_dim, c = h * e.
"""

COUNTING = (
    "FLOPs count matmuls only (one multiply-add = 2 FLOPs; exp/where/max/softmax and other "
    "elementwise work are not counted). MTSA core = QK^T 2*b*h*n*n*e + the fused "
    "numerator/denominator matmul E_t @ [E_s*v, E_s] 2*b*h*n*n*(2e). MTSA projections = value "
    "2*b*n*w*c + per-head query, key, source2token hidden and output 4 * 2*b*h*n*e*e + per-head "
    "fusion gate 2*b*h*n*(2e)*e (joint: 2*b*n*(2c)*c) + output 2*b*n*c*w. "
    "MHA = q, k, v, output projections 4 * 2*b*n*w*c + QK^T and PV 2 * 2*b*h*n*n*e. "
    "A training step (forward + gradients wrt inputs and weights) counts 3x the forward FLOPs."
)

TRAIN_FACTOR = 3


def mtsa_core_flops(b, n, h, e):
    return 2 * b * h * n * n * e + 2 * b * h * n * n * (2 * e)


def mtsa_projection_flops(b, n, w, h, e, output_dim=None, fusion_gate="per_head"):
    c = h * e
    output_dim = w if output_dim is None else output_dim
    value = 2 * b * n * w * c
    per_head = 4 * 2 * b * h * n * e * e  # query, key, source2token hidden, source2token output
    # The authors' per-head gate is (2e x e) per head; the joint one (2c x c), h times the FLOPs.
    gate = 2 * b * h * n * (2 * e) * e if fusion_gate == "per_head" else 2 * b * n * (2 * c) * c
    output = 2 * b * n * c * output_dim
    return value + per_head + gate + output


def mtsa_flops(b, n, w, h, e, fusion_gate="per_head"):
    return mtsa_core_flops(b, n, h, e) + mtsa_projection_flops(
        b, n, w, h, e, fusion_gate=fusion_gate
    )


def mha_flops(b, n, w, h, e):
    c = h * e
    return 4 * 2 * b * n * w * c + 2 * 2 * b * h * n * n * e


def explicit_score_tensor_bytes(b, n, h, e, itemsize=4):
    """Size of the explicit form's (b, h, n, n, e) float32 score tensor."""
    return b * h * n * n * e * itemsize


def attention_matrix_bytes(b, n, h, itemsize=4):
    """Size of one (b, h, n, n) float32 tensor."""
    return b * h * n * n * itemsize
