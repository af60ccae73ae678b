"""TF Serving's road to a SavedModel, through TensorFlow's C API: no TensorFlow
Python runtime involved.

TF Serving loads a SavedModel with the C++ `LoadSavedModel`: a Session over the `serve` MetaGraph,
the restore op, `__saved_model_init_op` fed with the asset paths, then `Session::Run` by tensor
name. The C API in the TensorFlow wheel (`libtensorflow_cc.so.2`) exposes that same loader as
`TF_LoadSessionFromSavedModel`, and `TF_LoadLibrary` registers the tensorflow-text kernels as a
serving binary that links them would. This module drives both with `ctypes`, so what works only
through `tf.saved_model.load` (anonymous lookup tables, for one) fails here as it fails for TF
Serving, TF Java or a C client. One difference: this TensorFlow build runs XLA must-compile
functions on CPU, which TF Serving refuses unless started with `--xla_cpu_compilation_enabled=true`;
the checker's static audit flags those.

It imports only the standard library and numpy, and finds the shared libraries without
importing `tensorflow`, so it also runs as a script (the readiness checker starts it by path
in a clean process):

    python session_road.py PLAN.json RESULT.json

PLAN.json: `{"path": ..., "tags": ["serve"], "libraries": [...] (default: every tensorflow-text
kernel library), "requests": [{"feeds": {tensor_name: tensor}, "fetches": [tensor_name, ...]}, ...],
"concurrency": {"request": index, "threads": 8, "repeats": 25}, "timed_repeats": N (optional)}`,
a tensor being `{"dtype", "shape", "values"}` with string values base64-encoded.
RESULT.json: `{"load_seconds", "error" (the load's, if it failed), "responses": [{"outputs":
[tensor, ...], "timed_seconds": [N runs]} or {"error": message}], "concurrency": {...}}`.
"""

import base64
import ctypes
import glob
import importlib.metadata
import importlib.util
import json
import os
import sys
import threading
import time

import numpy as np

# TF_DataType codes (tensorflow/c/tf_datatype.h) and the numpy dtype of each.
DTYPES_BY_CODE = {
    1: "float32",
    2: "float64",
    3: "int32",
    4: "uint8",
    5: "int16",
    6: "int8",
    7: "string",
    9: "int64",
    10: "bool",
    17: "uint16",
    19: "float16",
    22: "uint32",
    23: "uint64",
}
DTYPES = {name: code for code, name in DTYPES_BY_CODE.items()}  # by numpy dtype name
_TSTRING_SIZE = (
    24  # sizeof(TF_TString) on 64-bit platforms (tensorflow/core/platform/ctstring_internal.h)
)


class SessionRoadError(RuntimeError):
    """A load or run that failed on the C API, with TensorFlow's status message."""


class _Output(ctypes.Structure):
    _fields_ = [("oper", ctypes.c_void_p), ("index", ctypes.c_int)]


def _package_directory(name):
    spec = importlib.util.find_spec(name)  # finds the package without importing (running) it
    if spec is None or not spec.submodule_search_locations:
        raise SessionRoadError(f"the {name} package is not installed")
    return spec.submodule_search_locations[0]


def tensorflow_text_libraries():
    """The tensorflow-text kernel libraries, which a serving binary links for the tf-text ops."""
    try:
        directory = _package_directory("tensorflow_text")
    except SessionRoadError:
        return []
    return sorted(glob.glob(os.path.join(directory, "python", "ops", "*.so")))


class _CApi:
    """The C API functions used here, with their ctypes signatures."""

    def __init__(self):
        directory = _package_directory("tensorflow")
        # The framework library first and global, so that the tf-text libraries resolve against it.
        ctypes.CDLL(
            os.path.join(directory, "libtensorflow_framework.so.2"), mode=ctypes.RTLD_GLOBAL
        )
        lib = ctypes.CDLL(os.path.join(directory, "libtensorflow_cc.so.2"), mode=ctypes.RTLD_GLOBAL)
        p, c_int, c_size, c_int64 = ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t, ctypes.c_int64
        signatures = {
            "TF_NewStatus": ([], p),
            "TF_DeleteStatus": ([p], None),
            "TF_GetCode": ([p], c_int),
            "TF_Message": ([p], ctypes.c_char_p),
            "TF_LoadLibrary": ([ctypes.c_char_p, p], p),
            "TF_NewGraph": ([], p),
            "TF_DeleteGraph": ([p], None),
            "TF_NewSessionOptions": ([], p),
            "TF_DeleteSessionOptions": ([p], None),
            "TF_LoadSessionFromSavedModel": (
                [p, p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p), c_int, p, p, p],
                p,
            ),
            "TF_CloseSession": ([p, p], None),
            "TF_DeleteSession": ([p, p], None),
            "TF_GraphOperationByName": ([p, ctypes.c_char_p], p),
            "TF_SessionRun": (
                [
                    p,
                    p,
                    ctypes.POINTER(_Output),
                    ctypes.POINTER(p),
                    c_int,
                    ctypes.POINTER(_Output),
                    ctypes.POINTER(p),
                    c_int,
                    p,
                    c_int,
                    p,
                    p,
                ],
                None,
            ),  # fmt: skip
            "TF_AllocateTensor": ([c_int, ctypes.POINTER(c_int64), c_int, c_size], p),
            "TF_DeleteTensor": ([p], None),
            "TF_TensorType": ([p], c_int),
            "TF_NumDims": ([p], c_int),
            "TF_Dim": ([p, c_int], c_int64),
            "TF_TensorData": ([p], p),
            "TF_TensorByteSize": ([p], c_size),
            "TF_TensorElementCount": ([p], c_int64),
            "TF_StringInit": ([p], None),
            "TF_StringCopy": ([p, ctypes.c_char_p, c_size], None),
            "TF_StringGetDataPointer": ([p], p),
            "TF_StringGetSize": ([p], c_size),
            "TF_StringDealloc": ([p], None),
        }
        for name, (argtypes, restype) in signatures.items():
            function = getattr(lib, name)
            function.argtypes, function.restype = argtypes, restype
            setattr(self, name[3:], function)

    def check(self, status, what):
        """Raises `SessionRoadError` with TensorFlow's message if `status` is not OK."""
        if self.GetCode(status) != 0:
            message = self.Message(status).decode("utf-8", "replace")
            raise SessionRoadError(f"{what}: {message}")


class Session:
    """A SavedModel loaded as TF Serving loads it, run by tensor name.

    Args:
        path: the SavedModel directory (a version directory, `.../<name>/<version>`).
        tags: the MetaGraph tags; TF Serving loads `serve`.
        libraries: op and kernel libraries to load first; default the tensorflow-text ones.

    Raises:
        SessionRoadError: a library or the SavedModel failed to load (TensorFlow's message).
    """

    def __init__(self, path, tags=("serve",), libraries=None):
        self._api = api = _CApi()
        status = api.NewStatus()
        try:
            for library in tensorflow_text_libraries() if libraries is None else libraries:
                api.LoadLibrary(os.fsencode(library), status)
                api.check(status, f"loading {library}")
            self._graph = api.NewGraph()
            options = api.NewSessionOptions()
            tag_array = (ctypes.c_char_p * len(tags))(*[tag.encode() for tag in tags])
            self._session = api.LoadSessionFromSavedModel(
                options, None, os.fsencode(path), tag_array, len(tags), self._graph, None, status
            )
            api.DeleteSessionOptions(options)
            api.check(status, f"loading the SavedModel {path}")
        finally:
            api.DeleteStatus(status)

    def close(self):
        """Closes and deletes the session and its graph (idempotent)."""
        if getattr(self, "_session", None):
            status = self._api.NewStatus()
            self._api.CloseSession(self._session, status)
            self._api.DeleteSession(self._session, status)
            self._api.DeleteStatus(status)
            self._api.DeleteGraph(self._graph)
            self._session = None

    def __enter__(self):
        return self

    def __exit__(self, *exception):
        self.close()

    def _endpoint(self, tensor_name):
        operation, _, index = tensor_name.partition(":")
        handle = self._api.GraphOperationByName(self._graph, operation.encode())
        if not handle:
            raise SessionRoadError(
                f"the graph has no operation {operation!r} (tensor {tensor_name!r})"
            )
        return _Output(handle, int(index or 0))

    def run(self, feeds, fetches):
        """Runs the session once, as TF Serving's Predict does.

        Args:
            feeds: {tensor name: numpy array}; string arrays hold `bytes` (or
                `str`, encoded as UTF-8).
            fetches: tensor names to return.

        Returns:
            The fetched tensors as numpy arrays (strings as an object array of
            `bytes`), in fetch order.

        Raises:
            SessionRoadError: TensorFlow's error for this run (e.g. "Table not initialized").
        """
        api = self._api
        if not self._session:
            raise SessionRoadError("the session is closed")
        names = list(feeds)
        inputs = (_Output * len(names))(*[self._endpoint(name) for name in names])
        outputs = (_Output * len(fetches))(*[self._endpoint(name) for name in fetches])
        input_tensors = []
        output_values = (ctypes.c_void_p * len(fetches))()
        status = api.NewStatus()
        try:
            for name in names:
                input_tensors.append(self._to_tensor(np.asarray(feeds[name])))
            input_values = (ctypes.c_void_p * len(names))(*input_tensors)
            api.SessionRun(
                self._session, None,
                inputs, input_values, len(names),
                outputs, output_values, len(fetches),
                None, 0, None, status,
            )  # fmt: skip
            api.check(status, "running the session")
            return [self._from_tensor(output_values[i]) for i in range(len(fetches))]
        finally:
            api.DeleteStatus(status)
            for tensor in input_tensors:
                self._delete_tensor(tensor)
            for tensor in output_values:
                if tensor:
                    api.DeleteTensor(tensor)

    def _to_tensor(self, array):
        """A new TF_Tensor holding `array` (strings as TF_TStrings, numbers in
        native byte order)."""
        api = self._api
        is_string = array.dtype.kind in "OSU"
        dtype = "string" if is_string else array.dtype.name
        if dtype not in DTYPES:
            raise SessionRoadError(
                f"inputs must be of dtype {sorted(DTYPES)}. Received: dtype={array.dtype}"
            )
        if is_string:
            values = [v.encode("utf-8") if isinstance(v, str) else v for v in array.reshape(-1)]
            if not all(isinstance(v, bytes) for v in values):
                raise SessionRoadError("string inputs must hold str or bytes values only")
        else:
            array = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("="))
        dims = (ctypes.c_int64 * max(array.ndim, 1))(*array.shape)
        size = array.size * _TSTRING_SIZE if is_string else array.nbytes
        tensor = api.AllocateTensor(DTYPES[dtype], dims, array.ndim, size)
        data = api.TensorData(tensor)
        if is_string:
            for i in range(
                len(values)
            ):  # every element initialized first, so that a delete is always safe
                api.StringInit(data + i * _TSTRING_SIZE)
            for i, value in enumerate(values):
                api.StringCopy(data + i * _TSTRING_SIZE, value, len(value))
        elif array.nbytes:
            ctypes.memmove(data, array.ctypes.data, array.nbytes)
        return tensor

    def _delete_tensor(self, tensor):
        api = self._api
        if api.TensorType(tensor) == DTYPES["string"]:
            data = api.TensorData(tensor)
            for i in range(api.TensorElementCount(tensor)):
                api.StringDealloc(data + i * _TSTRING_SIZE)
        api.DeleteTensor(tensor)

    def _from_tensor(self, tensor):
        api = self._api
        code = api.TensorType(tensor)
        if code not in DTYPES_BY_CODE:
            raise SessionRoadError(
                f"outputs must be of a dtype in {sorted(DTYPES)}. Received: TF_DataType {code}"
            )
        shape = tuple(api.Dim(tensor, i) for i in range(api.NumDims(tensor)))
        data = api.TensorData(tensor)
        if DTYPES_BY_CODE[code] == "string":
            values = []
            for i in range(api.TensorElementCount(tensor)):
                element = data + i * _TSTRING_SIZE
                values.append(
                    ctypes.string_at(api.StringGetDataPointer(element), api.StringGetSize(element))
                )
            array = np.empty(len(values), dtype=object)
            array[:] = values
            return array.reshape(shape)
        dtype = np.dtype(DTYPES_BY_CODE[code])
        buffer = (
            ctypes.string_at(data, api.TensorByteSize(tensor))
            if api.TensorByteSize(tensor)
            else b""
        )
        return np.frombuffer(buffer, dtype=dtype).reshape(shape).copy()


def encode_tensor(array):
    """A numpy array as JSON-ready data.

    Args:
        array: a numpy array (or array-like); strings as `bytes` or `str`.

    Returns:
        `{"dtype", "shape", "values"}`: the flat values, strings base64-encoded.
    """
    array = np.asarray(array)
    if array.dtype.kind in "OSU":
        values = [
            base64.b64encode(v.encode("utf-8") if isinstance(v, str) else bytes(v)).decode("ascii")
            for v in array.reshape(-1)
        ]
        return {"dtype": "string", "shape": list(array.shape), "values": values}
    return {
        "dtype": array.dtype.name,
        "shape": list(array.shape),
        "values": array.reshape(-1).tolist(),
    }


def decode_tensor(tensor):
    """The inverse of `encode_tensor`: a numpy array, strings as an object array of `bytes`."""
    shape = tuple(tensor["shape"])
    if tensor["dtype"] == "string":
        array = np.empty(len(tensor["values"]), dtype=object)
        array[:] = [base64.b64decode(value) for value in tensor["values"]]
        return array.reshape(shape)
    return np.asarray(tensor["values"], dtype=tensor["dtype"]).reshape(shape)


def _run_request(session, request):
    feeds = {name: decode_tensor(tensor) for name, tensor in request["feeds"].items()}
    return session.run(feeds, request["fetches"])


def _timed(session, request, repeats):
    """The seconds of `repeats` runs of `request`, one after another (the feeds
    decoded once, before)."""
    feeds = {name: decode_tensor(tensor) for name, tensor in request["feeds"].items()}
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(feeds, request["fetches"])
        seconds.append(time.perf_counter() - start)
    return seconds


def _concurrency(session, request, reference, threads, repeats):
    """Runs `request` `repeats` times on each of `threads` threads at once, as a
    model server does."""
    differences, errors = [], []
    lock = threading.Lock()

    def worker():
        for _ in range(repeats):
            try:
                outputs = _run_request(session, request)
            except Exception as error:
                with lock:
                    errors.append(str(error))
                continue
            with lock:
                differences.append(
                    max(_difference(a, b) for a, b in zip(outputs, reference, strict=True))
                )

    start = time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    seconds = time.perf_counter() - start
    return {
        "threads": threads,
        "requests": threads * repeats,
        "seconds": seconds,
        "requests_per_second": threads * repeats / seconds if seconds else None,
        "max_difference": max(differences, default=None),
        "errors": errors[:5],
        "error_count": len(errors),
    }


def _difference(a, b):
    """How far two outputs are apart: the largest absolute difference, inf for other
    shapes or strings."""
    if a.shape != b.shape:
        return float("inf")
    if a.dtype == object or b.dtype == object:
        return 0.0 if np.array_equal(a, b) else float("inf")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def run_plan(plan):
    """Loads the SavedModel of `plan` and runs its requests (see the module docstring)."""
    result = {"responses": []}
    start = time.perf_counter()
    try:
        session = Session(plan["path"], tuple(plan.get("tags", ("serve",))), plan.get("libraries"))
    except SessionRoadError as error:
        result["error"] = str(error)
        return result
    result["load_seconds"] = time.perf_counter() - start
    with session:
        outputs_by_request = []
        for request in plan.get("requests", []):
            try:
                outputs = _run_request(session, request)
            except Exception as error:  # one failing request must not lose the others' answers
                outputs_by_request.append(None)
                message = (
                    str(error)
                    if isinstance(error, SessionRoadError)
                    else f"{type(error).__name__}: {error}"
                )
                result["responses"].append({"error": message})
                continue
            outputs_by_request.append(outputs)
            response = {"outputs": [encode_tensor(output) for output in outputs]}
            if plan.get("timed_repeats"):
                response["timed_seconds"] = _timed(session, request, plan["timed_repeats"])
            result["responses"].append(response)
        concurrency = plan.get("concurrency")
        index = concurrency["request"] if concurrency else None
        if (
            concurrency
            and index < len(outputs_by_request)
            and outputs_by_request[index] is not None
        ):
            result["concurrency"] = _concurrency(
                session,
                plan["requests"][index],
                outputs_by_request[index],
                concurrency.get("threads", 8),
                concurrency.get("repeats", 25),
            )
    return result


def main(argv):
    if len(argv) != 2:
        print("usage: python session_road.py PLAN.json RESULT.json", file=sys.stderr)
        return 2
    with open(argv[0], encoding="utf-8") as file:
        plan = json.load(file)
    result = run_plan(plan)
    result["tensorflow_imported"] = "tensorflow" in sys.modules
    try:
        result["tensorflow_version"] = importlib.metadata.version("tensorflow")
    except importlib.metadata.PackageNotFoundError:
        result["tensorflow_version"] = None
    with open(argv[1], "w", encoding="utf-8") as file:
        json.dump(result, file)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
