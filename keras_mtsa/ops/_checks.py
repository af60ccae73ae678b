"""Argument checks shared by every floor of the package: each error names the argument and
the expected value."""

import numbers

import keras


def _is_int_at_least(value, minimum):
    # A bool is an int to Python, never a count.
    return not isinstance(value, bool) and isinstance(value, numbers.Integral) and value >= minimum


def positive_int(name, value, allow_none=False):
    if value is None and allow_none:
        return None
    if not _is_int_at_least(value, 1):
        expected = "a positive integer" + (" or None" if allow_none else "")
        raise ValueError(f"`{name}` must be {expected}. Received: {name}={value!r}")
    return int(value)


def int_at_least(name, value, minimum, why=""):
    """An integer (never a bool) >= `minimum`; `why` follows the bound in the message."""
    if not _is_int_at_least(value, minimum):
        raise ValueError(
            f"`{name}` must be an integer >= {minimum}{why}. Received: {name}={value!r}"
        )
    return int(value)


def non_negative_int(name, value):
    if not _is_int_at_least(value, 0):
        raise ValueError(f"`{name}` must be a non-negative integer. Received: {name}={value!r}")
    return int(value)


def rate(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise ValueError(f"`{name}` must be a float in [0, 1). Received: {name}={value!r}")
    return float(value)


def boolean(name, value):
    if not isinstance(value, bool):
        raise ValueError(f"`{name}` must be True or False. Received: {name}={value!r}")
    return value


def choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {choices}. Received: {name}={value!r}")
    return value


def activation(name, value):
    """Resolves an activation identifier, naming the argument when Keras does not know it."""
    try:
        return keras.activations.get(value)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"`{name}` must be a Keras activation name or callable (e.g. 'elu', 'relu'). "
            f"Received: {name}={value!r}"
        ) from error


def sequence_input_shape(layer_name, input_shape):
    """Checks a (batch, length, features) input shape with a known feature dimension."""
    input_shape = tuple(input_shape)
    if len(input_shape) != 3:
        raise ValueError(
            f"{layer_name} expects `inputs` of rank 3 (batch, length, features). "
            f"Received inputs with shape {input_shape}"
        )
    if input_shape[-1] is None:
        raise ValueError(
            f"{layer_name} needs the last dimension of `inputs` (features) to be known. "
            f"Received inputs with shape {input_shape}"
        )
    return input_shape
