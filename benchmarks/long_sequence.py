"""Long sequences: blockwise MTSA against the full form and Keras MultiHeadAttention, batch 1.

    python benchmarks/long_sequence.py  # lengths 4096 .. 32768 (several minutes)
    python benchmarks/long_sequence.py --lengths 4096,8192  # a shorter run

Model width 256, 8 heads of 32 (4 forward + 4 backward for MTSA), float32, TensorFlow with XLA
(the step is a `tf.function(jit_compile=True)`). For every (model, length) one fresh subprocess
measures the forward time and the training-step time (gradients of mean(y^2) w.r.t. the input and
all weights), medians of --repeats calls after a compiling call, and the peak resident memory of
the process (VmHWM) minus its baseline after imports and inputs. A watchdog kills a subprocess
whose resident memory passes --mem-limit-gib and reports "OOM". The printed markdown table is
what the README shows.
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time

MODELS = ("mtsa_blockwise", "mtsa_full", "mha")
GIB = 1024**3

# Runs in the subprocess: argv = model, length, block_size, repeats.
_WORKER = r"""
import json, os, sys, time
import numpy as np
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import keras, tensorflow as tf
import keras_mtsa

def rss(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
model_name, length, block_size, repeats = (
    sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
)
x = tf.constant(np.random.default_rng(0).normal(size=(1, length, 256)).astype("float32"))
if model_name == "mha":
    inner = keras.layers.MultiHeadAttention(num_heads=8, key_dim=32, output_shape=256)
    layer = lambda t: inner(t, t)
    inner(x[:, :8], x[:, :8])
    weights = inner.trainable_weights
else:
    inner = keras_mtsa.MTSA(num_heads=8, head_dim=32, output_dim=256,
                            block_size=block_size if model_name == "mtsa_blockwise" else None)
    inner.build(x.shape)
    layer = inner
    weights = inner.trainable_weights
baseline = rss("VmRSS:")

@tf.function(jit_compile=True)
def forward(t):
    return layer(t)

@tf.function(jit_compile=True)
def train_step(t):
    with tf.GradientTape() as tape:
        tape.watch(t)
        loss = tf.reduce_mean(tf.square(layer(t)))
    return tape.gradient(loss, [t] + list(weights))

def timed(function):
    function(x)  # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function(x)
        tf.nest.map_structure(lambda r: r.numpy(), result)
        times.append(time.perf_counter() - start)
    return float(np.median(times))

result = {"forward_s": timed(forward), "train_s": timed(train_step)}
result["peak_bytes"] = rss("VmHWM:") - baseline
print("RESULT " + json.dumps(result))
"""


def run_one(model, length, block_size, repeats, mem_limit, timeout):
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow")
    process = subprocess.Popen(
        [sys.executable, "-c", _WORKER, model, str(length), str(block_size), str(repeats)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=environment,
    )
    killed = {"reason": None}

    def watchdog():
        started = time.time()
        while process.poll() is None:
            try:
                with open(f"/proc/{process.pid}/status") as status:
                    resident = next(
                        int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:")
                    )
            except (OSError, StopIteration):
                resident = 0
            if resident > mem_limit:
                killed["reason"] = "OOM"
            elif time.time() - started > timeout:
                killed["reason"] = "timeout"
            if killed["reason"]:
                process.kill()
                return
            time.sleep(0.2)

    thread = threading.Thread(target=watchdog, daemon=True)
    thread.start()
    output, _ = process.communicate()
    thread.join()
    if killed["reason"]:
        return {"status": killed["reason"]}
    for line in output.splitlines():
        if line.startswith("RESULT "):
            return {"status": "ok", **json.loads(line[len("RESULT ") :])}
    return {"status": f"failed (exit {process.returncode})"}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", default="4096,8192,16384,32768")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--block-size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mem-limit-gib", type=float, default=22.0)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per subprocess")
    args = parser.parse_args(argv)
    lengths = [int(n) for n in args.lengths.split(",")]
    models = args.models.split(",")
    results = {}
    dead = set()  # a model that ran out of memory is not tried at longer lengths
    for length in lengths:
        for model in models:
            if model in dead:
                results[model, length] = {"status": "OOM (shorter length did)"}
                continue
            result = run_one(
                model, length, args.block_size, args.repeats, args.mem_limit_gib * GIB, args.timeout
            )
            results[model, length] = result
            if result["status"] != "ok":
                dead.add(model)
            print(model, length, json.dumps(result), flush=True)

    def cell(result, key, unit):
        if result["status"] != "ok":
            return result["status"]
        return f"{result[key] / unit:.2f}"

    print(
        f"\nbatch 1, width 256, 8 heads of 32, float32, XLA, block_size {args.block_size}; memory: "
        f"peak RSS above baseline (GiB); time: median seconds; limit {args.mem_limit_gib} GiB\n"
    )
    header = "| length | " + " | ".join(f"{m} fwd s | {m} train s | {m} GiB" for m in models) + " |"
    print(header)
    print("|" + "---|" * (1 + 3 * len(models)))
    for length in lengths:
        cells = []
        for model in models:
            result = results[model, length]
            cells += [
                cell(result, "forward_s", 1),
                cell(result, "train_s", 1),
                cell(result, "peak_bytes", GIB),
            ]
        print(f"| {length} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
