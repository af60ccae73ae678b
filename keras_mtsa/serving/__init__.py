"""Serving checks: does TF Serving's own loader load and serve a SavedModel directory as it is?

    keras-mtsa-serving check saved_models/<name>/<version>
    # or: python -m keras_mtsa.serving check ...

`check` runs the checks, `serve` runs requests on the same road, `time_requests` times them there;
`session_road.Session` is TF Serving's road (the TF C API's `TF_LoadSessionFromSavedModel`, driven
by ctypes) for tests and clients.
"""

from keras_mtsa.serving.checker import DEFAULT_SAMPLES
from keras_mtsa.serving.checker import check
from keras_mtsa.serving.checker import serve
from keras_mtsa.serving.checker import time_requests
from keras_mtsa.serving.cli import main

__all__ = ["DEFAULT_SAMPLES", "check", "main", "serve", "time_requests"]
