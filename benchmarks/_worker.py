"""One benchmark configuration in one fresh process; started by benchmark.py, not
meant to be run by hand.

    python benchmarks/_worker.py --model {mtsa,fused,explicit,mha,matmul} --length N \
        --out records.jsonl ...

"fused" is the "mtsa" layer with implementation="fused" (whatever --implementation says, which is
the "mtsa" model's core).

Writes one JSON object per line to --out as soon as each piece is measured (so a configuration
killed for memory or time keeps what it had finished). The backend is Keras's (KERAS_BACKEND). The
JAX path never imports TensorFlow.
"""

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _memory  # noqa: E402  (benchmarks/ helper, stdlib only)


def parse_args(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--model", required=True, choices=("mtsa", "fused", "explicit", "mha", "matmul")
    )
    parser.add_argument("--length", type=int, default=0)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--head-dim", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument(
        "--phase-seconds",
        type=float,
        default=20.0,
        help="stop repeating a phase once its timed calls took this long (>= 1 call)",
    )
    parser.add_argument(
        "--phases",
        default="fwd,train",
        help="comma-separated subset of fwd,train (mtsa and fused add core_fwd,core_train)",
    )
    parser.add_argument("--matmul-lengths", default="512,1024")
    parser.add_argument(
        "--gemm-size", type=int, default=0, help="square GEMM size (0: 2048 CPU / 8192 GPU)"
    )
    parser.add_argument(
        "--check-explicit",
        action="store_true",
        help="explicit model: also compare its output with the efficient form's",
    )
    parser.add_argument(
        "--layer-jit",
        choices=("off", "default"),
        default="off",
        help="TensorFlow: MTSA(jit_compile=False) inside the benchmark's own XLA function "
        "(off), or the layer's default inner tf.function(jit_compile=True) (default)",
    )
    parser.add_argument(
        "--nested-jit-check",
        action="store_true",
        help="mtsa on TensorFlow: also time train steps of a default MTSA (inner jit) on "
        "fresh inputs, to detect per-value recompilation",
    )
    parser.add_argument(
        "--fusion-gate",
        choices=("per_head", "joint"),
        default="per_head",
        help="mtsa, fused and explicit: the MTSA layer's fusion gate",
    )
    parser.add_argument(
        "--implementation",
        choices=("auto", "full", "fused"),
        default="auto",
        help="mtsa: the layer's attention core (keras_mtsa.ops.self_attention); fused always uses "
        "'fused'",
    )
    parser.add_argument("--out", required=True)
    return parser.parse_args(argv)


class Recorder:
    def __init__(self, path, common):
        self.path = path
        self.common = common

    def write(self, **record):
        record = {**self.common, **record}
        with open(self.path, "a") as out:
            out.write(json.dumps(record) + "\n")
            out.flush()


def is_oom(error):
    text = f"{type(error).__name__}: {error}"
    return any(
        marker in text
        for marker in (
            "RESOURCE_EXHAUSTED",
            "ResourceExhausted",
            "Out of memory",
            "out of memory",
            "OOM",
            "MemoryError",
            "Failed to allocate",
            "failed to allocate",
        )
    )


# --------------------------------------------------------------------------------------------------
# Backend harnesses: jit a function, sync, gradients, memory.


class TensorFlowHarness:
    name = "tensorflow"

    def __init__(self):
        import tensorflow as tf

        self.tf = tf
        self.gpu = bool(tf.config.list_physical_devices("GPU"))

    def versions(self):
        return {"tensorflow": self.tf.__version__}

    def devices(self):
        gpus = self.tf.config.list_physical_devices("GPU")
        if gpus:
            details = self.tf.config.experimental.get_device_details(gpus[0])
            return "gpu", details.get("device_name", gpus[0].name)
        return "cpu", "cpu"

    def random(self, shape, seed, scale=1.0):
        return self.tf.random.stateless_normal(shape, seed=(seed, 0)) * scale

    def to_numpy(self, x):
        return x.numpy()

    def sync(self, result):
        if self.gpu:
            self.tf.experimental.sync_devices()

    def forward(self, layer, call):
        fn = self.tf.function(lambda *inputs: call(*inputs), jit_compile=True, autograph=False)
        return Compiled(lambda *inputs: fn(*inputs))

    def train_step(self, layer, call):
        tf = self.tf
        variables = list(layer.trainable_variables) if layer is not None else []

        def step(*inputs):
            with tf.GradientTape() as tape:
                for x in inputs:
                    tape.watch(x)
                output = call(*inputs)
                loss = tf.reduce_mean(tf.square(tf.cast(output, "float32")))
            grads = tape.gradient(loss, list(inputs) + variables)
            return loss, grads

        fn = tf.function(step, jit_compile=True, autograph=False)
        return Compiled(lambda *inputs: fn(*inputs))

    def device_memory(self):
        if not self.gpu:
            return None
        info = self.tf.config.experimental.get_memory_info("GPU:0")
        return {"bytes_in_use": info["current"], "peak_bytes_in_use": info["peak"]}

    def reset_device_peak(self):
        if self.gpu:
            self.tf.config.experimental.reset_memory_stats("GPU:0")


class JaxHarness:
    name = "jax"

    def __init__(self):
        import jax

        self.jax = jax
        self.device = jax.devices()[0]

    def versions(self):
        import jaxlib

        return {
            "jax": self.jax.__version__,
            "jaxlib": jaxlib.__version__,
            "jax_default_matmul_precision": str(self.jax.config.jax_default_matmul_precision),
        }

    def devices(self):
        return self.device.platform, getattr(self.device, "device_kind", str(self.device))

    def random(self, shape, seed, scale=1.0):
        return self.jax.random.normal(self.jax.random.PRNGKey(seed), shape, dtype="float32") * scale

    def to_numpy(self, x):
        import numpy as np

        return np.asarray(x)

    def sync(self, result):
        self.jax.block_until_ready(result)

    def _values(self, layer):
        if layer is None:
            return [], []
        return (
            [v.value for v in layer.trainable_variables],
            [v.value for v in layer.non_trainable_variables],
        )

    def forward(self, layer, call):
        jax = self.jax
        trainable, non_trainable = self._values(layer)

        def fn(trainable, non_trainable, *inputs):
            if layer is None:
                return call(*inputs)
            output, _ = layer.stateless_call(trainable, non_trainable, *call.args(*inputs))
            return output

        return Compiled(jax.jit(fn), prefix=(trainable, non_trainable), lower=True)

    def train_step(self, layer, call):
        jax = self.jax
        import jax.numpy as jnp

        trainable, non_trainable = self._values(layer)

        def loss_fn(trainable, inputs):
            if layer is None:
                output = call(*inputs)
            else:
                output, _ = layer.stateless_call(trainable, non_trainable, *call.args(*inputs))
            return jnp.mean(jnp.square(output.astype("float32")))

        grad_fn = jax.value_and_grad(loss_fn, argnums=(0, 1))
        fn = jax.jit(lambda trainable, *inputs: grad_fn(trainable, inputs))
        return Compiled(fn, prefix=(trainable,), lower=True)

    def device_memory(self):
        try:
            stats = self.device.memory_stats()
        except Exception:  # noqa: BLE001  (CPU devices may not implement it)
            stats = None
        if not stats:
            return None
        return {
            k: stats[k] for k in ("bytes_in_use", "peak_bytes_in_use", "bytes_limit") if k in stats
        }

    def reset_device_peak(self):
        pass  # JAX has no reset: its peak is cumulative over the process (fwd runs before train)


class Compiled:
    """A jitted callable; on JAX it is lowered and compiled ahead so compile time and XLA's memory
    analysis are separate from the timed calls."""

    def __init__(self, fn, prefix=(), lower=False):
        self.fn = fn
        self.prefix = prefix
        self.lower = lower
        self.compiled = None
        self.analysis = None

    def compile(self, *inputs):
        if not self.lower:
            return None
        self.compiled = self.fn.lower(*self.prefix, *inputs).compile()
        analysis = {}
        try:
            mem = self.compiled.memory_analysis()
            for key in (
                "temp_size_in_bytes",
                "argument_size_in_bytes",
                "output_size_in_bytes",
                "alias_size_in_bytes",
                "generated_code_size_in_bytes",
            ):
                if hasattr(mem, key):
                    analysis[key] = int(getattr(mem, key))
        except Exception:  # noqa: BLE001
            pass
        try:
            cost = self.compiled.cost_analysis()
            if isinstance(cost, (list, tuple)):
                cost = cost[0] if cost else {}
            if cost and "flops" in cost:
                analysis["xla_flops"] = float(cost["flops"])
        except Exception:  # noqa: BLE001
            pass
        self.analysis = analysis
        return analysis

    def __call__(self, *inputs):
        if self.compiled is not None:
            return self.compiled(*self.prefix, *inputs)
        return self.fn(*self.prefix, *inputs)


class Call:
    """The model's call on the benchmark inputs; `args` gives the positional
    args of `layer.call`."""

    def __init__(self, layer, args):
        self.layer = layer
        self.args = args

    def __call__(self, *inputs):
        return self.layer(*self.args(*inputs))


# --------------------------------------------------------------------------------------------------


def time_calls(harness, fn, inputs, warmup, repeats, budget_s):
    """First call (compiles on TF), warm-up calls, then timed calls; returns (first_s, [times])."""
    start = time.perf_counter()
    result = fn(*inputs)
    harness.sync(result)
    first = time.perf_counter() - start
    for _ in range(warmup):
        result = None
        result = fn(*inputs)
        harness.sync(result)
    # The timed calls' own working set: VmHWM reset to the RSS now (after compile and warm-up).
    result = None
    peak_until_now = _memory.peak_rss()
    reset = _memory.reset_peak_rss()
    before = _memory.current_rss()
    times = []
    while len(times) < repeats:
        result = None
        start = time.perf_counter()
        result = fn(*inputs)
        harness.sync(result)
        times.append(time.perf_counter() - start)
        if sum(times) > budget_s:
            break
    timed_peak = _memory.peak_rss()
    steady = {
        "phase_peak_rss": max(peak_until_now, timed_peak),
        "rss_before_timed": before if reset else None,
        "timed_peak_rss": timed_peak if reset else None,
    }
    return first, times, result, steady


def run_phase(record, harness, phase, make_fn, inputs, args, baseline, flops=None):
    """Compiles and times one phase; writes its record (or its error)."""
    can_reset = _memory.reset_peak_rss()
    harness.reset_device_peak()
    result = None
    try:
        fn = make_fn()
        compile_start = time.perf_counter()
        analysis = fn.compile(*inputs) if isinstance(fn, Compiled) else None
        compile_s = time.perf_counter() - compile_start if analysis is not None else None
        first, times, result, steady = time_calls(
            harness, fn, inputs, args.warmup, args.repeats, args.phase_seconds
        )
    except Exception as error:  # noqa: BLE001
        record.write(
            phase=phase,
            status="OOM" if is_oom(error) else "error",
            error=f"{type(error).__name__}: {str(error)[:2000]}",
            peak_rss=_memory.peak_rss(),
            peak_rss_reset=can_reset,
            baseline_rss=baseline["rss"],
        )
        traceback.print_exc()
        return None
    peak = steady["phase_peak_rss"]
    median = statistics.median(times)
    entry = dict(
        phase=phase,
        status="ok",
        first_call_s=first,
        compile_s=compile_s,
        times_s=times,
        median_s=median,
        min_s=min(times),
        repeats=len(times),
        peak_rss=peak,
        peak_rss_delta=peak - baseline["rss"],
        peak_rss_reset=can_reset,
        baseline_rss=baseline["rss"],
        rss_after=_memory.current_rss(),
        # The timed calls alone (VmHWM reset after compile and warm-up): their
        # peak above the RSS then.
        timed_peak_rss=steady["timed_peak_rss"],
        timed_peak_delta=(
            steady["timed_peak_rss"] - steady["rss_before_timed"]
            if steady["timed_peak_rss"] is not None
            else None
        ),
        xla_analysis=analysis,
    )
    device = harness.device_memory()
    if device is not None:
        entry["device_memory"] = device
        if "peak_bytes_in_use" in device and baseline.get("device_bytes") is not None:
            entry["device_peak_delta"] = device["peak_bytes_in_use"] - baseline["device_bytes"]
    if flops is not None:
        entry["flops"] = flops
        entry["flop_per_s"] = flops / median
    record.write(**entry)
    return result


def machine_info(harness, keras):
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    kind, device = harness.devices()
    try:
        usable_cores = len(os.sched_getaffinity(0))
    except AttributeError:
        usable_cores = os.cpu_count()
    return dict(
        cpu_model=cpu,
        cpu_count=os.cpu_count(),
        usable_cores=usable_cores,
        total_memory=_memory.total_memory(),
        python=platform.python_version(),
        platform=platform.platform(),
        keras=keras.__version__,
        backend=keras.backend.backend(),
        device_kind=kind,
        device=device,
        **harness.versions(),
    )


def main(argv=None):
    args = parse_args(argv)
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        harness = TensorFlowHarness()
    elif backend == "jax":
        harness = JaxHarness()
    else:
        raise SystemExit(f"unsupported backend {backend!r} (tensorflow or jax)")
    keras.config.set_floatx("float32")
    keras.config.set_dtype_policy("float32")

    b, n, w, h, e = args.batch, args.length, args.width, args.heads, args.head_dim
    common = dict(
        model=args.model, length=n, batch=b, width=w, heads=h, head_dim=e, backend=backend
    )
    record = Recorder(args.out, common)
    record.write(
        phase="info",
        status="ok",
        info=machine_info(harness, keras),
        tensorflow_imported="tensorflow" in sys.modules,
    )

    if args.model == "matmul":
        return run_matmul(args, harness, record)

    import _flops
    from keras_mtsa import ops as mtsa_ops
    from keras_mtsa.layers import mtsa as mtsa_module

    x = harness.random((b, n, w), seed=1)
    # The attention core of the mtsa and fused models (the explicit form overrides the core).
    implementation = "fused" if args.model == "fused" else args.implementation
    if args.model in ("mtsa", "fused", "explicit"):
        layer_class = (
            explicit_mtsa_class(mtsa_module) if args.model == "explicit" else mtsa_module.MTSA
        )
        layer = layer_class(
            num_heads=h,
            head_dim=e,
            output_dim=w,
            head_masks=("forward",) * (h // 2) + ("backward",) * (h - h // 2),
            # The benchmark's functions are XLA-compiled as a whole; see --layer-jit and the README.
            jit_compile=(args.layer_jit == "default"),
            fusion_gate=args.fusion_gate,
            **({} if args.model == "explicit" else {"implementation": implementation}),
        )
        call = Call(layer, lambda x: (x,))
        flops = _flops.mtsa_flops(b, n, w, h, e, fusion_gate=args.fusion_gate)
    else:
        layer = keras.layers.MultiHeadAttention(num_heads=h, key_dim=e)  # output = query width (w)
        call = Call(layer, lambda x: (x, x))
        flops = _flops.mha_flops(b, n, w, h, e)
    symbolic = keras.KerasTensor((b, n, w), dtype="float32")
    layer(*call.args(symbolic))  # builds the weights, no computation

    baseline = {"rss": _memory.current_rss()}
    device = harness.device_memory()
    baseline["device_bytes"] = device.get("bytes_in_use") if device else None
    core = {}
    if args.model in ("mtsa", "fused"):
        # What "auto" picks here (fused only with JAX on a GPU or TPU), for the report.
        core = dict(
            implementation=implementation,
            resolved_implementation=mtsa_ops.core.resolve_implementation(
                implementation, layer.token2token_activation, layer.dropout > 0
            ),
            token2token_activation=layer.token2token_activation,
            dropout=layer.dropout,
        )
    record.write(
        phase="baseline",
        status="ok",
        baseline_rss=baseline["rss"],
        baseline_device_bytes=baseline["device_bytes"],
        weights=int(sum(math.prod(v.shape) for v in layer.weights)),
        **core,
    )

    phases = [p for p in args.phases.split(",") if p]
    outputs = {}
    if "fwd" in phases:
        outputs["fwd"] = run_phase(
            record,
            harness,
            "fwd",
            lambda: harness.forward(layer, call),
            (x,),
            args,
            baseline,
            flops,
        )
    if "train" in phases:
        run_phase(
            record,
            harness,
            "train",
            lambda: harness.train_step(layer, call),
            (x,),
            args,
            baseline,
            _flops.TRAIN_FACTOR * flops,
        )

    if args.model in ("mtsa", "fused") and ("core_fwd" in phases or "core_train" in phases):
        core_flops = _flops.mtsa_core_flops(b, n, h, e)
        core_inputs = tuple(harness.random((b, h, n, e), seed=10 + i, scale=0.5) for i in range(4))
        head_masks = layer.head_masks

        def core(query, key, source2token, value):
            return mtsa_ops.self_attention(
                query,
                key,
                source2token,
                value,
                head_masks=head_masks,
                token2token_activation="exp",
                implementation=implementation,
            )

        if "core_fwd" in phases:
            run_phase(
                record,
                harness,
                "core_fwd",
                lambda: harness.forward(None, core),
                core_inputs,
                args,
                baseline,
                core_flops,
            )
        if "core_train" in phases:
            run_phase(
                record,
                harness,
                "core_train",
                lambda: harness.train_step(None, core),
                core_inputs,
                args,
                baseline,
                _flops.TRAIN_FACTOR * core_flops,
            )

    if args.model == "mtsa" and args.nested_jit_check and backend == "tensorflow":
        nested_jit_check(record, harness, mtsa_module, keras, b, n, w, h, e, seed_input=x)

    if args.model == "explicit" and args.check_explicit:
        import numpy as np

        def forward_once(layer, call):
            if backend == "tensorflow":
                return harness.forward(layer, call)(x)
            return _jax_forward_once(harness, layer, call, x)

        # After the timed phases, so a train-only run (--quick) checks too
        # without changing its peak.
        explicit_out = outputs.pop("fwd", None)
        explicit_out = harness.to_numpy(
            forward_once(layer, call) if explicit_out is None else explicit_out
        )
        # The efficient form: the base class with the same configuration and weights.
        efficient = mtsa_module.MTSA.from_config(layer.get_config())
        efficient_call = Call(efficient, lambda x: (x,))
        efficient(*efficient_call.args(symbolic))
        efficient.set_weights(layer.get_weights())
        efficient_out = harness.to_numpy(forward_once(efficient, efficient_call))
        diff = float(np.max(np.abs(explicit_out - efficient_out)))
        scale = float(np.max(np.abs(efficient_out)))
        record.write(phase="check", status="ok", max_abs_diff=diff, max_abs_output=scale)
    record.write(phase="done", status="ok")
    return 0


def nested_jit_check(record, harness, mtsa_module, keras, b, n, w, h, e, seed_input):
    """TensorFlow: a default MTSA (its core in an inner tf.function(jit_compile=True))
    in an XLA train step.

    Times the first call, a repeat on the same input, and a call on a new input. If the new input
    costs about as much as the first call, the step is recompiled for every input value: XLA
    got the inputs as compile-time constants (it constant-folds the forward pass), as with Keras
    `model.fit` under XLA.
    """
    layer = mtsa_module.MTSA(num_heads=h, head_dim=e, output_dim=w)
    layer(keras.KerasTensor((b, n, w), dtype="float32"))
    step = harness.train_step(layer, Call(layer, lambda x: (x,)))
    other = harness.random((b, n, w), seed=2)
    timings = {}
    for label, x in (
        ("first_call_s", seed_input),
        ("same_input_s", seed_input),
        ("new_input_s", other),
        ("new_input_again_s", other),
    ):
        start = time.perf_counter()
        harness.sync(step(x))
        timings[label] = time.perf_counter() - start
    recompiles = timings["new_input_s"] > max(1.0, 10 * timings["same_input_s"])
    record.write(
        phase="nested_jit_check",
        status="recompiles per input value" if recompiles else "ok",
        recompiles=recompiles,
        **timings,
    )


def _jax_forward_once(harness, layer, call, x):
    fn = harness.forward(layer, call)
    return fn(x)


def explicit_mtsa_class(mtsa_module):
    """`MTSA` whose attention core is `reference_tensorized_attention`, the explicit (b, h, n, n, d)
    form, on the same projections: a subclass overriding the layer's `_compute_attention` hook."""
    from keras_mtsa import ops as mtsa_ops

    class ExplicitMTSA(mtsa_module.MTSA):
        def _compute_attention(
            self,
            query,
            key,
            source2token,
            value,
            padding_mask=None,
            attention_mask=None,
            training=None,
        ):
            if training and self.dropout:
                raise ValueError("the explicit benchmark form has no dropout")
            mask = mtsa_ops.combined_attention_mask(
                query.shape[2], self.head_masks, self.attend_to_self, padding_mask, attention_mask
            )
            token2token = mtsa_ops.token2token_logits(query, key, self.token2token_activation)
            return mtsa_ops.reference_tensorized_attention(token2token, source2token, value, mask)

    return ExplicitMTSA


def run_matmul(args, harness, record):
    """Float32 matmul throughput under XLA: the core's two batched shapes at a few lengths, and a
    square GEMM for context."""
    import keras
    from keras import ops

    b, h, e = args.batch, args.heads, args.head_dim
    kind, _ = harness.devices()
    gemm = args.gemm_size or (8192 if kind == "gpu" else 2048)
    cases = []
    for n in [int(v) for v in args.matmul_lengths.split(",") if v]:
        cases.append(
            (f"qk n={n}", "bhqd,bhkd->bhqk", (b, h, n, e), (b, h, n, e), 2 * b * h * n * n * e, n)
        )
        cases.append(
            (
                f"fused n={n}",
                "bhqk,bhkd->bhqd",
                (b, h, n, n),
                (b, h, n, 2 * e),
                2 * b * h * n * n * 2 * e,
                n,
            )
        )
    cases.append((f"gemm {gemm}", "ij,jk->ik", (gemm, gemm), (gemm, gemm), 2 * gemm**3, 0))
    baseline = {"rss": _memory.current_rss(), "device_bytes": None}
    del keras
    for i, (label, equation, shape_a, shape_b, flops, n) in enumerate(cases):
        lhs = harness.random(shape_a, seed=100 + 2 * i)
        rhs = harness.random(shape_b, seed=101 + 2 * i)

        def matmul(lhs, rhs, equation=equation):
            return ops.einsum(equation, lhs, rhs)

        record.common = {**record.common, "length": n}
        run_phase(
            record,
            harness,
            f"matmul {label}",
            lambda matmul=matmul: harness.forward(None, matmul),
            (lhs, rhs),
            args,
            baseline,
            flops,
        )
        del lhs, rhs
    record.write(phase="done", status="ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
