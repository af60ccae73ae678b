"""What works on Keras's other backends: `model.export` of MTSA models on JAX, served as TF Serving
loads a SavedModel. Runs under `make test-jax` (KERAS_BACKEND=jax); skipped on other backends."""

import keras
import numpy as np
import pytest

from helpers import assert_close
from keras_mtsa import MTSA
from keras_mtsa import serving

pytestmark = [
    pytest.mark.backends,
    pytest.mark.skipif(
        keras.backend.backend() != "jax",
        reason=f"JAX export through jax2tf; backend is {keras.backend.backend()}",
    ),
]


def _token_model(block_size):
    token_ids = keras.Input((None,), dtype="int32", name="token_ids")
    x = keras.layers.Embedding(20, 8, mask_zero=True)(token_ids)
    x = MTSA(num_heads=2, head_dim=4, block_size=block_size, seed=1)(x)
    return keras.Model(token_ids, x)


@pytest.mark.parametrize("block_size", [None, 3], ids=["full", "blockwise"])
def test_model_export_on_jax_serves_the_jax_models_outputs(tmp_path, block_size):
    keras.utils.set_random_seed(1)
    model = _token_model(block_size)
    token_ids = np.array([[3, 5, 7, 2, 9, 4, 1], [6, 8, 2, 0, 0, 0, 0]], dtype="int32")
    expected = keras.ops.convert_to_numpy(model(token_ids))
    path = tmp_path / "mtsa" / "1"

    # Keras's default export: jax2tf with the gradient, which TF's SavedModel traces.
    model.export(str(path))

    # Loaded in a clean process through TF's C API, the road TF Serving takes.
    (answer,) = serving.serve(str(path), [("serving_default", {"token_ids": token_ids})])
    (served,) = answer.values()
    assert_close(served, expected, 1e-5)
