"""Written-out gradients whose forward pass also reads tensors it does not differentiate (masks)."""

from keras import ops


def custom_gradient_call(function, differentiable, constants):
    """Calls `function(*differentiable, *constants)` under `keras.ops.custom_gradient`.

    `function` returns `(output, grad)` as for `ops.custom_gradient`, with `grad` returning one
    gradient per differentiable tensor. The constants (masks, dropout masks; None where absent) get
    no gradient. They enter the custom gradient as arguments, never by closure: on JAX a tensor that
    the function closes over becomes a constant of the traced gradient, whose size jax2tf cannot
    compare with symbolic shapes, and `model.export` failed ("Symbolic dimension comparison
    '2*a^2*batch' < '2000000000' is inconclusive").

    Args:
        function: `(*differentiable, *constants) -> (output, grad)`.
        differentiable: the tensors to differentiate.
        constants: tensors or None, passed through in order.

    Returns:
        The output of `function`.
    """
    present = tuple(constant is not None for constant in constants)
    given = [constant for constant in constants if constant is not None]
    count = len(differentiable)

    @ops.custom_gradient
    def call(*tensors):
        remaining = iter(tensors[count:])
        restored = [next(remaining) if there else None for there in present]
        output, grad = function(*tensors[:count], *restored)

        def grad_with_constants(*args, **kwargs):
            return (*grad(*args, **kwargs), *(None for _ in given))

        return output, grad_with_constants

    return call(*differentiable, *given)
