"""Arguments the layers pass on to their dense sublayers."""


def clone_initializer(initializer):
    """A fresh copy: a seeded initializer shared between sublayers would give them
    identical weights."""
    return initializer.__class__.from_config(initializer.get_config())


def dense_arguments(layer, use_bias=True):
    """`layer`'s kernel (and, with `use_bias`, bias) initializer, regularizer and constraint,
    and its dtype policy, as keyword arguments of `Dense` / `EinsumDense`; initializers are
    cloned per sublayer."""
    arguments = dict(
        kernel_initializer=clone_initializer(layer.kernel_initializer),
        kernel_regularizer=layer.kernel_regularizer,
        kernel_constraint=layer.kernel_constraint,
        dtype=layer.dtype_policy,
    )
    if use_bias:
        arguments.update(
            bias_initializer=clone_initializer(layer.bias_initializer),
            bias_regularizer=layer.bias_regularizer,
            bias_constraint=layer.bias_constraint,
        )
    return arguments
