"""MTSA against MultiHeadAttention at the package's own shapes, side by side in one process.

Each preset builds one `MTSA` and one `keras.layers.MultiHeadAttention` that do the same job: the
same (batch, n, width) inputs with a padding mask (a random length per row, at least half of n), the
same output width. For every length it compiles a training step (forward, gradients, an SGD update)
and a forward pass of each layer (`tf.function(jit_compile=True)` on TensorFlow, `jax.jit` on JAX),
then times them interleaved, MTSA then MHA, `--repeats` times, and prints the medians and their
ratio.

    python benchmarks/step_ratio.py [--preset default|long|all] [--repeats 30] [--breakdown]
    KERAS_BACKEND=jax python benchmarks/step_ratio.py

Presets: `default`, the package's default shape (batch 50, 2 heads x 150 over 300 features) at the
lengths its tasks run, n = 16, 32, 64, 128; `long`, 8 heads x 32 over 256 features, batch 16, at n =
256 and 512. `--breakdown` also times each layer with its attention core replaced by an elementwise
stand-in that reads the same inputs: the layer's time less that is the core's (forward, or forward
and backward in the training step), the rest is the projections, gate and masking around it. Time
it on an otherwise idle host: a concurrent run moves the ratios.
"""

import argparse
import statistics
import time

import keras
import numpy as np

from keras_mtsa import MTSA

PRESETS = {
    "default": dict(batch=50, heads=2, head_dim=150, width=300, lengths=(16, 32, 64, 128)),
    "long": dict(batch=16, heads=8, head_dim=32, width=256, lengths=(256, 512)),
}
LEARNING_RATE = 1e-3


class MTSAWithoutCore(MTSA):
    """MTSA whose attention core is an elementwise stand-in reading all of its inputs: what the
    layer costs around the core (projections, fusion gate, masking)."""

    def _compute_attention(
        self, query, key, source2token, value, padding_mask=None, attention_mask=None, training=None
    ):
        return value * keras.ops.sigmoid(source2token) + query * key


class MHAWithoutCore(keras.layers.MultiHeadAttention):
    """MultiHeadAttention whose attention is an elementwise stand-in: its projections alone."""

    def _compute_attention(self, query, key, value, *args, **kwargs):
        return value + query * key, None


LAYERS = {
    "mtsa": lambda heads, head_dim: MTSA(num_heads=heads, head_dim=head_dim, seed=1),
    "mha": lambda heads, head_dim: keras.layers.MultiHeadAttention(
        num_heads=heads, key_dim=head_dim, seed=1
    ),
    "mtsa-no-core": lambda heads, head_dim: MTSAWithoutCore(
        num_heads=heads, head_dim=head_dim, seed=1
    ),
    "mha-no-core": lambda heads, head_dim: MHAWithoutCore(
        num_heads=heads, key_dim=head_dim, seed=1
    ),
}


def inputs(batch, length, width, seed=0):
    """Random features and a padding mask (each row keeps a random length in [n/2, n])."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, length, width)).astype("float32")
    lengths = rng.integers(max(1, length // 2), length + 1, size=batch)
    mask = np.arange(length)[None, :] < lengths[:, None]
    return x, mask


def call_arguments(layer, x, mask):
    """(args, kwargs) of a self-attention call of `layer` on `x` with padding `mask`."""
    if isinstance(layer, MTSA):
        return (x,), {"mask": mask}
    return (x, x), {"query_mask": mask, "value_mask": mask}


def apply(layer, x, mask):
    args, kwargs = call_arguments(layer, x, mask)
    return layer(*args, **kwargs)


def compiled_steps(layer, x, mask):
    """(train_step, forward): callables that run one compiled step and block until it is done."""
    backend = keras.backend.backend()
    apply(layer, x, mask)  # builds the weights
    if backend == "tensorflow":
        import tensorflow as tf

        variables = layer.trainable_variables

        @tf.function(jit_compile=True)
        def train(x, mask):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(apply(layer, x, mask)))
            for variable, gradient in zip(variables, tape.gradient(loss, variables)):
                variable.assign_sub(LEARNING_RATE * gradient)
            return loss

        @tf.function(jit_compile=True)
        def forward(x, mask):
            return apply(layer, x, mask)

        x, mask = tf.constant(x), tf.constant(mask)
        return (lambda: train(x, mask).numpy()), (lambda: forward(x, mask).numpy())
    if backend == "jax":
        import jax

        trainable = [v.value for v in layer.trainable_variables]
        fixed = [v.value for v in layer.non_trainable_variables]

        def output(trainable, x, mask):
            args, kwargs = call_arguments(layer, x, mask)
            result, _ = layer.stateless_call(trainable, fixed, *args, **kwargs)
            return result

        @jax.jit
        def train(trainable, x, mask):
            loss, gradients = jax.value_and_grad(
                lambda weights: jax.numpy.mean(jax.numpy.square(output(weights, x, mask)))
            )(trainable)
            return loss, [w - LEARNING_RATE * g for w, g in zip(trainable, gradients)]

        forward = jax.jit(output)
        state = {"weights": trainable}

        def train_step():
            loss, state["weights"] = train(state["weights"], x, mask)
            loss.block_until_ready()

        return train_step, (lambda: forward(state["weights"], x, mask).block_until_ready())
    raise NotImplementedError(f"no compiled step for backend {backend}")


def measure(preset, repeats, names=("mtsa", "mha"), warmup=2):
    """{(n, phase): {name: median ms}} for one preset, the layers timed interleaved."""
    shape = PRESETS[preset]
    results = {}
    for length in shape["lengths"]:
        x, mask = inputs(shape["batch"], length, shape["width"])
        steps = {
            name: compiled_steps(LAYERS[name](shape["heads"], shape["head_dim"]), x, mask)
            for name in names
        }
        for phase_index, phase in enumerate(("train", "forward")):
            calls = {name: steps[name][phase_index] for name in names}
            for call in calls.values():
                for _ in range(warmup):
                    call()
            times = {name: [] for name in names}
            for _ in range(repeats):
                for name, call in calls.items():  # interleaved: MTSA, MHA, MTSA, MHA, ...
                    started = time.perf_counter()
                    call()
                    times[name].append(time.perf_counter() - started)
            results[length, phase] = {
                name: 1e3 * statistics.median(values) for name, values in times.items()
            }
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=(*PRESETS, "all"), default="default")
    parser.add_argument("--repeats", type=int, default=30, help="timed calls of each step")
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also time each layer with its attention core replaced by an elementwise stand-in",
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be a positive integer. Received: --repeats {args.repeats}")
    presets = tuple(PRESETS) if args.preset == "all" else (args.preset,)
    names = tuple(LAYERS) if args.breakdown else ("mtsa", "mha")
    print(f"backend {keras.backend.backend()}, keras {keras.__version__}, {args.repeats} repeats")
    for preset in presets:
        shape = PRESETS[preset]
        heads = f"{shape['heads']} heads x {shape['head_dim']}"
        print(f"\n{preset}: batch {shape['batch']}, {heads} over {shape['width']} features\n")
        header = "| n | phase | MTSA ms | MHA ms | MTSA / MHA |"
        if args.breakdown:
            header += " MTSA core ms | MTSA rest ms | MHA core ms | MHA rest ms |"
        print(header)
        print("|---" * (header.count("|") - 1) + "|")
        for (length, phase), ms in measure(preset, args.repeats, names).items():
            row = f"| {length} | {phase} | {ms['mtsa']:.2f} | {ms['mha']:.2f} "
            row += f"| {ms['mtsa'] / ms['mha']:.2f} |"
            if args.breakdown:  # the core: the layer's time less its time with the stand-in
                for name in ("mtsa", "mha"):
                    rest = ms[f"{name}-no-core"]
                    row += f" {ms[name] - rest:.2f} | {rest:.2f} |"
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
