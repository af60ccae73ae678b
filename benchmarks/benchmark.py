"""MTSA (full and fused core) vs multi-head attention vs the explicit (n x n x d) form.

Time, peak memory and FLOP/s of each model's forward call and training step, side by side.

Usage (from the repository root, with the package installed or on PYTHONPATH):

    python benchmarks/benchmark.py --quick  # < 1 min: training step at 256 and 512, 3 repeats
    python benchmarks/benchmark.py          # full: lengths 64 .. 4096, 5 repeats
    KERAS_BACKEND=jax python benchmarks/benchmark.py --quick    # JAX backend (no TensorFlow import)
    python benchmarks/benchmark.py --lengths 256,1024 --models mtsa,mha --repeats 10
    python benchmarks/benchmark.py --lengths 128,256,512 --models mtsa,fused,mha --phases train

Every (model, length) runs in a fresh subprocess (benchmarks/_worker.py), so its peak memory is its
own; a watchdog kills a subprocess that exceeds --mem-limit-gib of RSS ("OOM") or --timeout seconds
("timeout"), and configurations whose estimated memory does not fit are not started ("OOM/skipped").
Models, at batch 16, width 256, 8 heads of 32, float32, XLA on:

  mtsa      keras_mtsa.MTSA(num_heads=8, head_dim=32, output_dim=256, 4 forward + 4 backward
            head masks, token2token_activation="exp", dropout=0, implementation=--implementation
            (default "auto": "fused" with JAX on a GPU or TPU, else "full"))
  fused     the same layer with implementation="fused": its core is one
            keras.ops.dot_product_attention call over the values [E_s * v, E_s] (docs/mtsa.md).
            The mtsa configuration is one that fused supports (exp token2token, no attention
            dropout), so both rows compute the same function and their ratio compares the cores.
  explicit  the same layer with its attention computed by
            keras_mtsa.ops.reference_tensorized_attention (the (b, h, n, n, d) form): a subclass
            overriding `MTSA._compute_attention`
  mha       keras.layers.MultiHeadAttention(num_heads=8, key_dim=32), self-attention, output
            width 256

Phases: "fwd" (a jitted forward call) and "train" (loss = mean(y^2); gradients wrt the input and all
weights; tf.GradientTape in tf.function(jit_compile=True) on TensorFlow,
jax.jit(jax.value_and_grad(...)) of `stateless_call` on JAX). The mtsa and fused subprocesses also
time their attention core alone (core_fwd, core_train: `keras_mtsa.ops.self_attention` on random
(b, h, n, d) projections, with the row's implementation). The ratio tables give mtsa/mha,
explicit/mtsa, fused/mtsa and fused/mha. A "matmul" subprocess measures float32 batched-matmul
throughput of the core's shapes under XLA (and a square GEMM).

Outputs go to --results-dir (default benchmarks/results/<machine-tag>/, which git ignores):
results.md (the tables printed to stdout), results.csv (one row per length with the ratios),
records.jsonl (every raw measurement), time.png and memory.png (log-log), logs/ (each
subprocess's output).
"""

import argparse
import csv
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import _flops  # noqa: E402
import _memory  # noqa: E402
from _memory import GIB  # noqa: E402
from _memory import MIB  # noqa: E402

MODELS = ("mtsa", "fused", "mha", "explicit")
QUICK_MODELS = ("mtsa", "mha", "explicit")
CORE_MODELS = ("mtsa", "fused")  # models whose subprocess also times the attention core alone
FULL_LENGTHS = (64, 128, 256, 512, 1024, 2048, 4096)
QUICK_LENGTHS = (256, 512)
PHASES = ("fwd", "train")

# Rough peak-memory models (bytes), used only to avoid starting what cannot fit. In units of one
# (b, h, n, n) float32 tensor A, or of the explicit form's (b, h, n, n, d) tensor T. Calibrated on
# the measured peaks (see the README of this folder); deliberately on the high side.
ESTIMATE_UNITS = {
    ("mtsa", "fwd"): ("A", 4.0),
    ("mtsa", "train"): ("A", 11.0),
    # Fused: linear in n with a flash kernel; where dot_product_attention is the plain
    # einsum form (TensorFlow, JAX on CPU) it holds (b, h, n, n) scores and weights, so the
    # mtsa figures are kept.
    ("fused", "fwd"): ("A", 4.0),
    ("fused", "train"): ("A", 11.0),
    ("mha", "fwd"): ("A", 3.0),
    ("mha", "train"): ("A", 6.5),
    ("explicit", "fwd"): ("T", 2.3),
    ("explicit", "train"): ("T", 3.5),
}

TARGETS = (
    "MTSA/MHA training-step time <= 1.25 at lengths 128..1024",
    "MTSA/MHA training-step peak memory <= 1.3 at lengths 128..1024",
    "explicit/MTSA time >= 10 at length 256 (training step)",
    "explicit/MTSA peak memory >= 8 at length 256 (training step)",
    "MTSA core >= 50% of matmul throughput at lengths >= 512 (core training step)",
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="lengths 256,512, training step only, 3 repeats, short phases, explicit form only "
        "at 256 (the targets' settings, in under a minute on an idle 2-core CPU)",
    )
    parser.add_argument(
        "--phases", help="comma-separated subset of fwd,train (default both; --quick: train)"
    )
    parser.add_argument(
        "--lengths", help="comma-separated sequence lengths (default: 64..4096, powers of 2)"
    )
    parser.add_argument(
        "--models",
        help="comma-separated subset of "
        + ",".join(MODELS)
        + " (default all; --quick: "
        + ",".join(QUICK_MODELS)
        + "; fused = the mtsa layer with implementation='fused')",
    )
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--head-dim", type=int, default=32)
    parser.add_argument("--repeats", type=int, help="timed calls per phase (default 5, quick 3)")
    parser.add_argument(
        "--warmup", type=int, default=1, help="untimed calls after the first (compiling) call"
    )
    parser.add_argument(
        "--phase-seconds",
        type=float,
        help="stop a phase's timed calls after this many seconds, >= 1 call (default 20, quick 3)",
    )
    parser.add_argument(
        "--timeout", type=float, help="seconds per subprocess (default 600, quick 180)"
    )
    parser.add_argument(
        "--mem-limit-gib",
        type=float,
        default=20.0,
        help="kill a subprocess whose RSS exceeds this "
        "(and skip configurations estimated above it)",
    )
    parser.add_argument(
        "--explicit-max-gib",
        type=float,
        default=16.0,
        help="skip the explicit form when its (b, h, n, n, d) float32 tensor exceeds this",
    )
    parser.add_argument(
        "--quick-explicit-max-gib",
        type=float,
        default=1.0,
        help="--quick: run the explicit form only where its n*n*d tensor is at most this",
    )
    parser.add_argument(
        "--no-core", action="store_true", help="skip the mtsa and fused core-only phases"
    )
    parser.add_argument(
        "--no-matmul", action="store_true", help="skip the matmul throughput subprocess"
    )
    parser.add_argument(
        "--no-check",
        action="store_true",
        help="skip comparing the explicit form's output with the efficient form's",
    )
    parser.add_argument(
        "--layer-jit",
        choices=("off", "default"),
        default="off",
        help="TensorFlow only: 'off' builds MTSA(jit_compile=False), compiled as part of the "
        "benchmark's XLA function; 'default' keeps the layer's inner "
        "tf.function(jit_compile=True) (see the nested-jit note in the output)",
    )
    parser.add_argument(
        "--fusion-gate",
        choices=("per_head", "joint"),
        default="per_head",
        help="MTSA's fusion gate: per_head (the default, the authors') or joint (one map over all "
        "heads, the package's gate before 0.2)",
    )
    parser.add_argument(
        "--implementation",
        choices=("auto", "full", "fused"),
        default="auto",
        help="the mtsa model's attention core: auto (fused with JAX on a GPU or TPU, else full), "
        "full, or fused (keras.ops.dot_product_attention over [E_s * v, E_s]); the fused model "
        "always uses fused",
    )
    parser.add_argument(
        "--xla-constant-folding",
        choices=("on", "off"),
        default="on",
        help="XLA's constant_folding pass for every model ('off' disables it; before the layer "
        "kept its positional mask broadcastable, folding reductions of that constant took "
        "minutes of compile time from n=512 on TensorFlow)",
    )
    parser.add_argument(
        "--nested-jit-check",
        action="store_true",
        help="TensorFlow: at the smallest length, also time a default MTSA (inner jit) train "
        "step on a new input to detect per-input recompilation",
    )
    parser.add_argument(
        "--results-dir", help="output folder (default benchmarks/results/<machine-tag>)"
    )
    parser.add_argument("--tag", help="machine tag for the default results folder")
    parser.add_argument("--logs-dir", help="subprocess logs (default <results-dir>/logs)")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument(
        "--from-records",
        nargs="+",
        metavar="RECORDS_JSONL",
        help="run nothing: render the tables, CSV and plots from records.jsonl files of earlier "
        "runs (later files override earlier ones for the same model, length and phase)",
    )
    args = parser.parse_args(argv)
    if args.lengths:
        args.lengths = tuple(int(v) for v in args.lengths.split(",") if v)
    elif args.from_records:
        args.lengths = None  # from the records
    else:
        args.lengths = QUICK_LENGTHS if args.quick else FULL_LENGTHS
    if args.phases:
        args.phases = tuple(p for p in args.phases.split(",") if p)
        for phase in args.phases:
            if phase not in PHASES:
                parser.error(f"unknown phase {phase!r} in --phases: choose from {PHASES}")
    else:
        args.phases = ("train",) if args.quick else PHASES
    if args.models:
        args.models = tuple(m for m in args.models.split(",") if m)
    elif args.from_records:
        args.models = ()  # the models found in the records (see shown_models)
    else:
        # --quick keeps to the targets' models: fused costs it another ~50% on a 2-core CPU.
        args.models = QUICK_MODELS if args.quick else MODELS
    for model in args.models:
        if model not in MODELS:
            parser.error(f"unknown model {model!r}: choose from {MODELS}")
    if args.repeats is None:
        args.repeats = 3 if args.quick else 5
    if args.phase_seconds is None:
        args.phase_seconds = 3.0 if args.quick else 20.0
    if args.timeout is None:
        args.timeout = 180.0 if args.quick else 600.0
    return args


# --------------------------------------------------------------------------------------------------
# Running one configuration.


def run_worker(worker_args, records_path, log_path, timeout, mem_limit, extra_env=None):
    """Runs _worker.py in a fresh process under a memory and time watchdog.

    Returns (records, outcome, peak_rss_seen, wall_s): outcome is "ok", "OOM" (killed above
    mem_limit, or died with the kernel's SIGKILL), "timeout" or "error (exit N)".
    """
    if os.path.exists(records_path):
        os.remove(records_path)
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONUNBUFFERED"] = "1"
    for key, value in (extra_env or {}).items():
        env[key] = (env.get(key, "") + " " + value).strip() if key == "XLA_FLAGS" else value
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    command = [
        sys.executable,
        os.path.join(HERE, "_worker.py"),
        *worker_args,
        "--out",
        records_path,
    ]
    start = time.monotonic()
    outcome = "ok"
    peak_seen = 0
    with open(log_path, "w") as log:
        log.write(" ".join(command) + "\n")
        log.flush()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        while process.poll() is None:
            rss = _memory.current_rss(process.pid) or 0
            peak_seen = max(peak_seen, rss)
            if rss > mem_limit:
                outcome = "OOM"
                process.send_signal(signal.SIGKILL)
                break
            if time.monotonic() - start > timeout:
                outcome = "timeout"
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.05)
        process.wait()
    wall = time.monotonic() - start
    if outcome == "ok" and process.returncode != 0:
        outcome = (
            "OOM" if process.returncode == -signal.SIGKILL else f"error (exit {process.returncode})"
        )
    records = []
    if os.path.exists(records_path):
        with open(records_path) as handle:
            records = [json.loads(line) for line in handle if line.strip()]
    return records, outcome, peak_seen, wall


def estimate_bytes(model, phase, b, n, h, e):
    unit, count = ESTIMATE_UNITS[(model, phase)]
    size = (
        _flops.attention_matrix_bytes(b, n, h)
        if unit == "A"
        else _flops.explicit_score_tensor_bytes(b, n, h, e)
    )
    return count * size


# --------------------------------------------------------------------------------------------------
# Results.


class Results:
    """All records, indexed by (model, length, phase)."""

    def __init__(self):
        self.records = []
        self.by_key = {}
        self.status = {}  # (model, length) -> outcome text for the table when not "ok"
        self.info = None

    def add(self, records):
        for record in records:
            self.records.append(record)
            if record.get("phase") == "info" and self.info is None:
                self.info = record["info"]
            self.by_key[(record.get("model"), record.get("length"), record.get("phase"))] = record

    def get(self, model, length, phase):
        record = self.by_key.get((model, length, phase))
        return record if record and record.get("status") == "ok" else None

    def cell_status(self, model, length, phase):
        record = self.by_key.get((model, length, phase))
        if record is not None and record.get("status") != "ok":
            return record.get("status")
        return self.status.get((model, length, phase)) or self.status.get((model, length))

    def time(self, model, length, phase):
        record = self.get(model, length, phase)
        return record["median_s"] if record else None

    def memory(self, model, length, phase):
        """(delta, absolute, kind): device allocator peak where there is one
        (GPU), else peak RSS."""
        record = self.get(model, length, phase)
        if not record:
            return None, None, None
        device = record.get("device_memory") or {}
        if "peak_bytes_in_use" in device and record.get("device_peak_delta") is not None:
            return record["device_peak_delta"], device["peak_bytes_in_use"], "device"
        return record["peak_rss_delta"], record["peak_rss"], "rss"

    def matmul_peak(self):
        """Best FLOP/s among the core-shaped batched matmuls (and the label), and
        the square GEMM's."""
        best, best_label, gemm = None, None, None
        for record in self.records:
            phase = record.get("phase", "")
            if (
                record.get("model") != "matmul"
                or record.get("status") != "ok"
                or not phase.startswith("matmul")
            ):
                continue
            if "gemm" in phase:
                gemm = record["flop_per_s"]
            elif best is None or record["flop_per_s"] > best:
                best, best_label = record["flop_per_s"], phase[len("matmul ") :]
        return best, best_label, gemm


def ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def fmt_ms(ms):
    if ms is None:
        return None
    return f"{ms:.0f}" if ms >= 100 else f"{ms:.1f}" if ms >= 10 else f"{ms:.2f}"


def fmt_ratio(value, digits=2):
    return None if value is None else f"{value:.{digits}f}"


def fmt_mib(delta_mib, absolute_mib):
    if delta_mib is None:
        return None
    return f"{delta_mib:,.0f} ({absolute_mib:,.0f})"


def cell(results, model, length, phase, text):
    if text is not None:
        return text
    status = results.cell_status(model, length, phase)
    return status or "–"


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def build_rows(results, args):
    """One dict per length with everything the CSV and the ratio table need."""
    peak, _, _ = results.matmul_peak()
    rows = []
    b, w, h, e = args.batch, args.width, args.heads, args.head_dim
    for n in args.lengths:
        row = {"length": n}
        for model in MODELS:
            for phase in ("fwd", "train"):
                row[f"{model}_{phase}_ms"] = _scale(results.time(model, n, phase), 1e3)
                record = results.get(model, n, phase)
                row[f"{model}_{phase}_min_ms"] = _scale(record and record["min_s"], 1e3)
                delta, absolute, kind = results.memory(model, n, phase)
                row[f"{model}_{phase}_peak_delta_mib"] = _scale(delta, 1 / MIB)
                row[f"{model}_{phase}_peak_mib"] = _scale(absolute, 1 / MIB)
                row[f"{model}_{phase}_memory_kind"] = kind
                record = results.get(model, n, phase)
                analysis = (record or {}).get("xla_analysis") or {}
                row[f"{model}_{phase}_xla_temp_mib"] = _scale(
                    analysis.get("temp_size_in_bytes"), 1 / MIB
                )
                first = (record or {}).get("first_call_s")
                if first is not None and record.get("compile_s") is not None:
                    first += record[
                        "compile_s"
                    ]  # JAX compiles ahead (lower().compile()), TF in the first call
                row[f"{model}_{phase}_first_call_s"] = first
                row[f"{model}_{phase}_xla_total_mib"] = _scale(
                    sum(
                        analysis.get(k, 0)
                        for k in (
                            "temp_size_in_bytes",
                            "argument_size_in_bytes",
                            "output_size_in_bytes",
                        )
                    )
                    if analysis
                    else None,
                    1 / MIB,
                )
                row[f"{model}_{phase}_status"] = (
                    "ok" if record else results.cell_status(model, n, phase)
                )
        for phase in ("fwd", "train"):
            row[f"mtsa_over_mha_time_{phase}"] = ratio(
                row[f"mtsa_{phase}_ms"], row[f"mha_{phase}_ms"]
            )
            row[f"mtsa_over_mha_memory_{phase}"] = ratio(
                row[f"mtsa_{phase}_peak_delta_mib"], row[f"mha_{phase}_peak_delta_mib"]
            )
            row[f"explicit_over_mtsa_time_{phase}"] = ratio(
                row[f"explicit_{phase}_ms"], row[f"mtsa_{phase}_ms"]
            )
            row[f"explicit_over_mtsa_memory_{phase}"] = ratio(
                row[f"explicit_{phase}_peak_delta_mib"], row[f"mtsa_{phase}_peak_delta_mib"]
            )
            row[f"mtsa_over_mha_xla_memory_{phase}"] = ratio(
                row[f"mtsa_{phase}_xla_total_mib"], row[f"mha_{phase}_xla_total_mib"]
            )
            row[f"explicit_over_mtsa_xla_memory_{phase}"] = ratio(
                row[f"explicit_{phase}_xla_total_mib"], row[f"mtsa_{phase}_xla_total_mib"]
            )
            for other in ("mtsa", "mha"):
                row[f"fused_over_{other}_time_{phase}"] = ratio(
                    row[f"fused_{phase}_ms"], row[f"{other}_{phase}_ms"]
                )
                row[f"fused_over_{other}_memory_{phase}"] = ratio(
                    row[f"fused_{phase}_peak_delta_mib"], row[f"{other}_{phase}_peak_delta_mib"]
                )
                row[f"fused_over_{other}_xla_memory_{phase}"] = ratio(
                    row[f"fused_{phase}_xla_total_mib"], row[f"{other}_{phase}_xla_total_mib"]
                )
        factor = {"fwd": 1, "train": _flops.TRAIN_FACTOR}
        # The fused core does the same counted matmuls as the full one (QK^T and
        # E_t @ [E_s v, E_s]).
        for model in CORE_MODELS:
            for phase in ("fwd", "train"):
                row[f"{model}_{phase}_gflops"] = _scale(
                    ratio(
                        factor[phase]
                        * _flops.mtsa_flops(b, n, w, h, e, fusion_gate=args.fusion_gate),
                        results.time(model, n, phase),
                    ),
                    1e-9,
                )
            for phase in ("core_fwd", "core_train"):
                flops = factor[phase[5:]] * _flops.mtsa_core_flops(b, n, h, e)
                row[f"{model}_{phase}_ms"] = _scale(results.time(model, n, phase), 1e3)
                row[f"{model}_{phase}_gflops"] = _scale(
                    ratio(flops, results.time(model, n, phase)), 1e-9
                )
        for phase in ("core_fwd", "core_train"):
            row[f"fused_over_mtsa_{phase}_time"] = ratio(
                row[f"fused_{phase}_ms"], row[f"mtsa_{phase}_ms"]
            )
        row["matmul_peak_gflops"] = _scale(peak, 1e-9)
        row["square_gemm_gflops"] = _scale(results.matmul_peak()[2], 1e-9)
        for model in CORE_MODELS:
            for key in ("fwd", "train", "core_fwd", "core_train"):
                row[f"{model}_{key}_fraction_of_matmul"] = ratio(
                    row[f"{model}_{key}_gflops"], row["matmul_peak_gflops"]
                )
        # The core's own two matmuls at this length, timed alone: (QK^T + fused)
        # time / core forward time.
        qk, fused = (
            results.get("matmul", n, f"matmul qk n={n}"),
            results.get("matmul", n, f"matmul fused n={n}"),
        )
        row["core_fwd_matmul_only_ms"] = (
            _scale(qk["median_s"] + fused["median_s"], 1e3) if qk and fused else None
        )
        row["core_fwd_matmul_share"] = ratio(
            row["core_fwd_matmul_only_ms"], row["mtsa_core_fwd_ms"]
        )
        check = results.get("explicit", n, "check")
        row["explicit_max_abs_diff"] = check["max_abs_diff"] if check else None
        rows.append(row)
    return rows


def _scale(value, factor):
    return None if value is None else value * factor


LABELS = {"mtsa": "MTSA", "fused": "fused", "mha": "MHA", "explicit": "explicit"}


def shown_models(results, args):
    """The models with columns in the tables: those asked for and those with records (so records of
    older runs, which have no fused model, render without empty fused columns)."""
    present = {r.get("model") for r in results.records} | {key[0] for key in results.status}
    return [m for m in MODELS if m in args.models or m in present] or list(MODELS)


def core_settings(results, args):
    """The setting text for the mtsa and fused rows' attention cores, from their baseline records
    (records of older runs have none: then from the flags)."""
    baselines = {}
    for record in results.records:
        if record.get("phase") == "baseline" and record.get("model") in CORE_MODELS:
            baselines.setdefault(record["model"], record)
    mtsa = baselines.get("mtsa", {})
    implementation = mtsa.get("implementation", args.implementation)
    resolved = mtsa.get("resolved_implementation")
    text = f"mtsa row: implementation={implementation!r}" + (
        f" (runs {resolved!r} here)" if resolved and resolved != implementation else ""
    )
    if "fused" in baselines or "fused" in args.models:
        fused = baselines.get("fused", {})
        activation = fused.get("token2token_activation", "exp")
        dropout = fused.get("dropout", 0.0)
        text += (
            f"; fused row: the same layer with implementation='fused' (token2token_activation="
            f"{activation!r}, dropout={dropout:g}: the benchmark's MTSA configuration, which the "
            "fused core supports, so both rows compute the same function and their "
            "ratio compares the cores)"
        )
        if resolved == "fused":
            text += (
                "; NOTE: the mtsa row resolved to the fused core as well, so fused/MTSA compares a "
                "core with itself (pass --implementation full to compare with the full core)"
            )
    return text


def render(results, rows, args, machine, notes):
    info = results.info or {}
    models = shown_models(results, args)
    core_models = [m for m in CORE_MODELS if m in models]
    memory_kind = next(
        (r[f"{m}_train_memory_kind"] for r in rows for m in MODELS if r[f"{m}_train_memory_kind"]),
        "rss",
    )
    out = [f"## MTSA benchmark: {machine['tag']}", ""]
    out.append(f"- machine: {machine['description']}")
    out.append(
        f"- software: Python {info.get('python', platform.python_version())}, "
        f"Keras {info.get('keras', '?')}, "
        + ", ".join(f"{k} {info[k]}" for k in ("tensorflow", "jax", "jaxlib") if k in info)
        + f"; backend {info.get('backend', '?')}, device {info.get('device_kind', '?')} "
        f"({info.get('device', '?')})"
    )
    out.append(
        f"- setting: batch {args.batch}, width {args.width}, {args.heads} heads x {args.head_dim}, "
        f"float32, XLA on; MTSA head masks {args.heads // 2} forward + "
        f"{args.heads - args.heads // 2} backward, {args.fusion_gate.replace('_', '-')} fusion "
        f"gate; {core_settings(results, args)}; median of up to {args.repeats} timed calls after "
        f"{args.warmup} warm-up call(s) (a phase stops repeating after {args.phase_seconds:g} s); "
        "one subprocess per (model, length)"
    )
    if memory_kind == "device":
        out.append(
            "- memory: peak of the device allocator (peak_bytes_in_use) minus its use at the "
            "baseline (after imports, inputs and weights); absolute peak in parentheses, MiB"
        )
    else:
        out.append(
            "- memory: peak RSS of the configuration's subprocess (VmHWM, reset before each phase "
            "when the kernel allows) minus its RSS at the baseline (after imports, inputs and "
            "weights); absolute peak in parentheses, MiB. Includes XLA compilation of that phase."
        )
    out.append(
        "- train = one training step: forward, loss = mean(y^2), gradients wrt the "
        "input and every weight"
    )
    out.append(f"- FLOPs: {_flops.COUNTING}")
    out += [f"- note: {n}" for n in notes]
    out.append("")

    header = ["n"] + [f"{LABELS[m]} {p}" for p in ("fwd", "train") for m in models]
    core_header = [f"{LABELS[m]} core {p}" for m in core_models for p in ("fwd", "train")]
    table = []
    for row in rows:
        n = row["length"]
        table.append(
            [n]
            + [
                cell(results, m, n, p, fmt_ms(row[f"{m}_{p}_ms"]))
                for p in ("fwd", "train")
                for m in models
            ]
            + [
                cell(results, m, n, p, fmt_ms(row[f"{m}_{p}_ms"]))
                for m in core_models
                for p in ("core_fwd", "core_train")
            ]
        )
    out += ["### Time (ms, median)", "", markdown_table(header + core_header, table), ""]

    table = [
        [row["length"]]
        + [
            cell(results, m, row["length"], p, fmt_ratio(row[f"{m}_{p}_first_call_s"], 1))
            for p in ("fwd", "train")
            for m in models
        ]
        for row in rows
    ]
    out += ["### First call: trace + compile + one run (s)", "", markdown_table(header, table), ""]

    table = []
    for row in rows:
        n = row["length"]
        table.append(
            [n]
            + [
                cell(
                    results,
                    m,
                    n,
                    p,
                    fmt_mib(row[f"{m}_{p}_peak_delta_mib"], row[f"{m}_{p}_peak_mib"]),
                )
                for p in ("fwd", "train")
                for m in models
            ]
        )
    out += [
        "### Peak memory (MiB above baseline; absolute peak in parentheses)",
        "",
        markdown_table(header, table),
        "",
    ]

    if any(
        row[f"{m}_{p}_xla_temp_mib"] is not None
        for row in rows
        for m in models
        for p in ("fwd", "train")
    ):
        table = [
            [row["length"]]
            + [
                fmt_ratio(row[f"{m}_{p}_xla_temp_mib"], 0) or "–"
                for p in ("fwd", "train")
                for m in models
            ]
            for row in rows
        ]
        out += [
            "### XLA temp buffers of the compiled program (MiB, "
            "memory_analysis().temp_size_in_bytes)",
            "",
            markdown_table(header, table),
            "",
        ]

    header = [
        "n",
        "MTSA/MHA time fwd",
        "MTSA/MHA time train",
        "MTSA/MHA mem fwd",
        "MTSA/MHA mem train",
        "explicit/MTSA time fwd",
        "explicit/MTSA time train",
        "explicit/MTSA mem fwd",
        "explicit/MTSA mem train",
        "MTSA/MHA XLA mem train",
        "explicit/MTSA XLA mem train",
        "MTSA train GFLOP/s",
        "MTSA train % matmul",
        "core fwd % matmul",
        "core train % matmul",
        "core fwd: own matmuls share",
    ]
    table = []
    for row in rows:
        pct = lambda v: None if v is None else f"{100 * v:.0f}%"  # noqa: E731
        values = [
            fmt_ratio(row["mtsa_over_mha_time_fwd"]),
            fmt_ratio(row["mtsa_over_mha_time_train"]),
            fmt_ratio(row["mtsa_over_mha_memory_fwd"]),
            fmt_ratio(row["mtsa_over_mha_memory_train"]),
            fmt_ratio(row["explicit_over_mtsa_time_fwd"], 1),
            fmt_ratio(row["explicit_over_mtsa_time_train"], 1),
            fmt_ratio(row["explicit_over_mtsa_memory_fwd"], 1),
            fmt_ratio(row["explicit_over_mtsa_memory_train"], 1),
            fmt_ratio(row["mtsa_over_mha_xla_memory_train"]),
            fmt_ratio(row["explicit_over_mtsa_xla_memory_train"], 1),
            fmt_ratio(row["mtsa_train_gflops"], 1),
            pct(row["mtsa_train_fraction_of_matmul"]),
            pct(row["mtsa_core_fwd_fraction_of_matmul"]),
            pct(row["mtsa_core_train_fraction_of_matmul"]),
            pct(row["core_fwd_matmul_share"]),
        ]
        table.append([row["length"]] + [v if v is not None else "–" for v in values])
    out += [
        "### Ratios",
        "",
        markdown_table(header, table),
        "",
        "mem = peak memory above baseline (table above); XLA mem = argument + output + temp bytes "
        "of the compiled program (JAX memory_analysis(): exact and allocator-independent; JAX "
        "only). % matmul = achieved FLOP/s (counted as above) / the best core-shaped batched "
        "matmul FLOP/s (matmul table below). own matmuls share = time of the core's QK^T and fused "
        "matmuls run alone at that length / core forward time (100% = the core costs no more "
        "than its two matmuls).",
        "",
    ]
    if "fused" in models:
        out += render_fused_ratios(rows)

    matmul = [
        r
        for r in results.records
        if r.get("model") == "matmul" and r.get("phase", "").startswith("matmul")
    ]
    if matmul:
        table = [
            [
                r["phase"][len("matmul ") :],
                fmt_ms(r.get("median_s") and r["median_s"] * 1e3) or r.get("status"),
                fmt_ratio(r.get("flop_per_s") and r["flop_per_s"] * 1e-9, 1) or "–",
            ]
            for r in matmul
        ]
        peak, label, _ = results.matmul_peak()
        out += [
            f"### Matmul throughput (float32, XLA); peak of the core-shaped ones: "
            f"{fmt_ratio(peak and peak * 1e-9, 1)} GFLOP/s ({label})",
            "",
            markdown_table(
                [
                    "shape (b=%d, h=%d, e=%d)" % (args.batch, args.heads, args.head_dim),
                    "ms",
                    "GFLOP/s",
                ],
                table,
            ),
            "",
        ]

    checks = [
        (row["length"], row["explicit_max_abs_diff"])
        for row in rows
        if row["explicit_max_abs_diff"] is not None
    ]
    if checks:
        out.append(
            "Explicit vs efficient output, max |difference|: "
            + ", ".join(f"n={n}: {d:.1e}" for n, d in checks)
        )
        out.append("")
    nested = [r for r in results.records if r.get("phase") == "nested_jit_check"]
    for r in nested:
        out.append(
            f"Nested-jit check (n={r['length']}, default MTSA with its inner "
            "tf.function(jit_compile=True), inside an XLA train step): first call "
            f"{r['first_call_s']:.1f} s, same input again {r['same_input_s'] * 1e3:.0f} ms, new "
            f"input {r['new_input_s']:.1f} s -> {r['status']}"
        )
        out.append("")
    out += ["### Targets", ""] + [f"- {line}" for line in evaluate_targets(rows)] + [""]
    return "\n".join(out)


def render_fused_ratios(rows):
    """The fused row against the full core (the mtsa row) and MHA, as the ratio table above."""
    header = [
        "n",
        "fused/MTSA time fwd",
        "fused/MTSA time train",
        "fused/MHA time fwd",
        "fused/MHA time train",
        "fused/MTSA mem fwd",
        "fused/MTSA mem train",
        "fused/MHA mem fwd",
        "fused/MHA mem train",
        "fused/MTSA XLA mem train",
        "fused/MHA XLA mem train",
        "fused/MTSA core time fwd",
        "fused/MTSA core time train",
        "fused core train % matmul",
    ]
    table = []
    for row in rows:
        fraction = row["fused_core_train_fraction_of_matmul"]
        values = [
            fmt_ratio(row[f"fused_over_{other}_{quantity}_{phase}"])
            for quantity in ("time", "memory")
            for other in ("mtsa", "mha")
            for phase in ("fwd", "train")
        ] + [
            fmt_ratio(row["fused_over_mtsa_xla_memory_train"]),
            fmt_ratio(row["fused_over_mha_xla_memory_train"]),
            fmt_ratio(row["fused_over_mtsa_core_fwd_time"]),
            fmt_ratio(row["fused_over_mtsa_core_train_time"]),
            None if fraction is None else f"{100 * fraction:.0f}%",
        ]
        table.append([row["length"]] + [v if v is not None else "–" for v in values])
    return [
        "### Ratios of the fused core (MTSA implementation='fused') to the mtsa row and MHA",
        "",
        markdown_table(header, table),
        "",
        "Below 1 = fused is faster / smaller. Where keras.ops.dot_product_attention has no fused "
        "kernel (TensorFlow; JAX on CPU) it is an unfused einsum-softmax-einsum over (b, h, n, n), "
        "so no gain is expected there; with JAX on a GPU or TPU it is cuDNN "
        "flash / splash attention.",
        "",
    ]


def evaluate_targets(rows):
    def verdict(values, test):
        values = [(n, v) for n, v in values if v is not None]
        if not values:
            return "n/a (not measured)"
        ok = all(test(v) for _, v in values)
        return ("PASS" if ok else "FAIL") + ": " + ", ".join(f"n={n} {v:.2f}" for n, v in values)

    by_n = {row["length"]: row for row in rows}
    mid = [n for n in by_n if 128 <= n <= 1024]
    long = [n for n in by_n if n >= 512]
    lines = [
        f"{TARGETS[0]}: "
        + verdict([(n, by_n[n]["mtsa_over_mha_time_train"]) for n in mid], lambda v: v <= 1.25),
        f"{TARGETS[1]}: "
        + verdict([(n, by_n[n]["mtsa_over_mha_memory_train"]) for n in mid], lambda v: v <= 1.3),
        f"{TARGETS[2]}: "
        + verdict(
            [(n, by_n[n]["explicit_over_mtsa_time_train"]) for n in by_n if n == 256],
            lambda v: v >= 10,
        ),
        f"{TARGETS[3]}: "
        + verdict(
            [(n, by_n[n]["explicit_over_mtsa_memory_train"]) for n in by_n if n == 256],
            lambda v: v >= 8,
        ),
        f"{TARGETS[4]}: "
        + verdict(
            [(n, by_n[n]["mtsa_core_train_fraction_of_matmul"]) for n in long], lambda v: v >= 0.5
        ),
    ]
    return lines


def write_csv(path, rows):
    if not rows:
        return
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()}
            )


def plot(results_dir, rows, machine):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plots", file=sys.stderr)
        return []
    styles = {
        "mtsa": ("MTSA (efficient)", "o-"),
        "fused": ("MTSA fused core", "D-"),
        "mha": ("MultiHeadAttention", "s-"),
        "explicit": ("MTSA explicit n*n*d form", "^--"),
    }
    paths = []
    for quantity, key, ylabel in (
        ("time", "{m}_{p}_ms", "time (ms, median)"),
        ("memory", "{m}_{p}_peak_delta_mib", "peak memory above baseline (MiB)"),
    ):
        figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
        for axis, phase in zip(axes, ("fwd", "train")):
            for model, (label, style) in styles.items():
                points = [(r["length"], r[key.format(m=model, p=phase)]) for r in rows]
                points = [(n, v) for n, v in points if v is not None and v > 0]
                if points:
                    axis.plot(*zip(*points), style, label=label)
            for model, style, label in (
                ("mtsa", "o:", "MTSA core only"),
                ("fused", "D:", "fused core only"),
            ):
                if quantity != "time":
                    break
                points = [
                    (r["length"], r[f"{model}_core_{phase}_ms"])
                    for r in rows
                    if r[f"{model}_core_{phase}_ms"]
                ]
                if points:
                    axis.plot(*zip(*points), style, color="gray", label=label)
            axis.set_xscale("log", base=2)
            axis.set_yscale("log")
            axis.set_xlabel("sequence length n")
            axis.set_ylabel(ylabel)
            axis.set_title({"fwd": "forward", "train": "training step (fwd + grads)"}[phase])
            axis.grid(True, which="both", alpha=0.3)
            if axis.get_legend_handles_labels()[0]:
                axis.legend(fontsize=8)
        figure.suptitle(f"{quantity}: {machine['tag']}", fontsize=10)
        figure.tight_layout()
        path = os.path.join(results_dir, f"{quantity}.png")
        figure.savefig(path, dpi=110)
        plt.close(figure)
        paths.append(path)
    return paths


def describe_machine(info):
    info = info or {}
    cores = info.get("usable_cores") or os.cpu_count()
    memory = info.get("total_memory") or _memory.total_memory()
    cpu = info.get("cpu_model") or platform.processor() or "unknown CPU"
    description = (
        f"{cpu}, {cores} usable cores ({info.get('cpu_count', os.cpu_count())} online), "
        f"{(memory or 0) / GIB:.0f} GiB RAM, {platform.system()} {platform.release()}"
    )
    if info.get("device_kind") == "gpu":
        description += f"; GPU {info.get('device')}"
    return description


def machine_tag(info, backend):
    info = info or {}
    if info.get("device_kind") == "gpu":
        device = info.get("device", "gpu")
    else:
        device = f"cpu-{info.get('cpu_model', 'cpu')}-{info.get('usable_cores', os.cpu_count())}c"
    slug = re.sub(r"[^a-z0-9]+", "-", device.lower()).strip("-")
    return f"{backend}-{slug}"[:80]


def detect_backend():
    backend = os.environ.get("KERAS_BACKEND")
    if backend:
        return backend
    try:
        with open(
            os.path.join(os.path.expanduser(os.environ.get("KERAS_HOME", "~/.keras")), "keras.json")
        ) as f:
            return json.load(f).get("backend", "tensorflow")
    except (OSError, ValueError):
        return "tensorflow"


# --------------------------------------------------------------------------------------------------


def main(argv=None):
    args = parse_args(argv)
    backend = detect_backend()
    started = time.monotonic()
    b, h, e = args.batch, args.heads, args.head_dim
    common = [
        "--batch",
        str(b),
        "--width",
        str(args.width),
        "--heads",
        str(h),
        "--head-dim",
        str(e),
        "--repeats",
        str(args.repeats),
        "--warmup",
        str(args.warmup),
        "--phase-seconds",
        str(args.phase_seconds),
        "--layer-jit",
        args.layer_jit,
        "--fusion-gate",
        args.fusion_gate,
        "--implementation",
        args.implementation,
    ]
    mem_limit = args.mem_limit_gib * GIB
    results = Results()
    notes = []
    machine = {"tag": args.tag or backend, "description": describe_machine(None)}
    # Logs go to a scratch folder until the first subprocess has told the machine (and so the tag).
    pending = os.path.join(HERE, "results", f"_pending-{os.getpid()}", "logs")
    paths = {"logs": args.logs_dir or pending, "results": None}
    os.makedirs(paths["logs"], exist_ok=True)

    def log(message):
        print(f"[{time.monotonic() - started:6.0f}s] {message}", file=sys.stderr, flush=True)

    folding = args.xla_constant_folding
    extra_env = (
        {"XLA_FLAGS": "--xla_disable_hlo_passes=constant_folding"} if folding == "off" else {}
    )
    if folding == "off":
        notes.append(
            "XLA's constant_folding pass is disabled "
            "(XLA_FLAGS=--xla_disable_hlo_passes=constant_folding) for every model and the matmul "
            "(--xla-constant-folding off)"
        )

    def run(name, worker_args):
        records, outcome, peak_seen, wall = run_worker(
            worker_args,
            os.path.join(paths["logs"], f"{name}.jsonl"),
            os.path.join(paths["logs"], f"{name}.log"),
            args.timeout,
            mem_limit,
            extra_env,
        )
        results.add(records)
        log(f"{name}: {outcome} in {wall:.0f} s, peak RSS seen {peak_seen / GIB:.2f} GiB")
        if paths["results"] is None:
            settle_paths()
        report(final=False)
        return records, outcome

    def settle_paths():
        info = results.info or {}
        machine["tag"] = args.tag or machine_tag(info, info.get("backend", backend))
        machine["description"] = describe_machine(info)
        paths["results"] = args.results_dir or os.path.join(HERE, "results", machine["tag"])
        os.makedirs(paths["results"], exist_ok=True)
        if paths["logs"] is None:
            shutil.rmtree(os.path.dirname(pending), ignore_errors=True)
        elif not args.logs_dir:
            logs = os.path.join(paths["results"], "logs")
            if os.path.exists(logs):
                shutil.rmtree(logs)
            shutil.move(paths["logs"], logs)
            shutil.rmtree(os.path.dirname(paths["logs"]), ignore_errors=True)
            paths["logs"] = logs

    def report(final):
        """Writes results.md, results.csv and records.jsonl (after every subprocess, so an
        interrupted run keeps what it measured); the final call also plots and prints."""
        info = results.info or {}
        all_notes = list(notes)
        if info.get("backend") == "tensorflow" and args.layer_jit == "off":
            all_notes.append(
                "TensorFlow: the MTSA layers are built with jit_compile=False and compiled as part "
                "of the benchmark's own tf.function(jit_compile=True); with the layer's default "
                "inner jit_compile=True, an XLA training step receives its inputs and weights as "
                "compile-time constants (constant-folded, recompiled for every new input): "
                "see --nested-jit-check"
            )
        if any(
            r.get("tensorflow_imported")
            for r in results.records
            if r.get("phase") == "info" and r.get("backend") == "jax"
        ):
            all_notes.append("WARNING: TensorFlow was imported on the JAX path")
        if not final:
            all_notes.append("PARTIAL: the run is still going or was interrupted")
        rows = build_rows(results, args)
        text = render(results, rows, args, machine, all_notes)
        results_dir = paths["results"]
        with open(os.path.join(results_dir, "results.md"), "w") as handle:
            handle.write(text + "\n")
        write_csv(os.path.join(results_dir, "results.csv"), rows)
        with open(os.path.join(results_dir, "records.jsonl"), "w") as handle:
            for record in results.records:
                handle.write(json.dumps(record) + "\n")
        if final:
            plots = [] if args.no_plots else plot(results_dir, rows, machine)
            print(text)
            log(
                f"wrote {results_dir}/results.md, results.csv, records.jsonl"
                + "".join(f", {os.path.basename(p)}" for p in plots)
                + f"; logs in {paths['logs']}"
            )

    if args.from_records:
        for path in args.from_records:
            with open(path) as handle:
                results.add([json.loads(line) for line in handle if line.strip()])
        if args.lengths is None:
            args.lengths = tuple(
                sorted(
                    {
                        r["length"]
                        for r in results.records
                        if r.get("model") in MODELS and r.get("length")
                    }
                )
            )
        for record in results.records:
            if record.get("phase") == "info":
                args.batch = record.get("batch", args.batch)
        paths["logs"] = None
        settle_paths()
        notes.append("rendered from " + ", ".join(args.from_records))
        report(final=True)
        return 0

    # 1. Matmul throughput first: it also reports the machine and its device.
    if not args.no_matmul:
        matmul_lengths = sorted({n for n in args.lengths if n >= 256} & {256, 512, 1024, 2048}) or [
            max(args.lengths)
        ]
        extra = []
        if args.quick:
            matmul_lengths = matmul_lengths[-1:]
        run(
            "matmul",
            [
                "--model",
                "matmul",
                *common,
                "--matmul-lengths",
                ",".join(map(str, matmul_lengths)),
                *extra,
            ],
        )
    device_limit = None
    for record in results.records:
        device = record.get("device_memory") or {}
        if device.get("bytes_limit"):
            device_limit = device["bytes_limit"]
    if device_limit:
        notes.append(
            f"device memory limit {device_limit / GIB:.1f} GiB "
            "(memory estimates checked against it)"
        )

    # 2. The configurations, shortest length first; a model that ran out of memory or time is not
    # run at longer lengths.
    failed = {}  # (model, phase) -> (outcome, length): not run at longer lengths
    for n in args.lengths:
        for model in args.models:
            if model == "explicit":
                tensor = _flops.explicit_score_tensor_bytes(b, n, h, e)
                if tensor > args.explicit_max_gib * GIB:
                    results.status[(model, n)] = "OOM/skipped"
                    log(
                        f"{model}-n{n}: OOM/skipped (its n*n*d tensor is {tensor / GIB:.0f} GiB > "
                        f"{args.explicit_max_gib:g} GiB)"
                    )
                    continue
                if args.quick and tensor > args.quick_explicit_max_gib * GIB:
                    results.status[(model, n)] = "skipped (--quick)"
                    log(
                        f"{model}-n{n}: skipped in --quick (its n*n*d tensor is "
                        f"{tensor / GIB:.1f} GiB)"
                    )
                    continue
            for phase in args.phases:
                name = f"{model}-n{n}-{phase}"
                if (model, phase) in failed or (phase == "train" and (model, "fwd") in failed):
                    outcome, at = failed.get((model, phase)) or failed[(model, "fwd")]
                    results.status[(model, n, phase)] = f"skipped ({outcome} at n={at})"
                    log(f"{name}: {results.status[(model, n, phase)]}")
                    continue
                if phase == "train" and results.cell_status(model, n, "fwd") not in (None, "ok"):
                    results.status[(model, n, phase)] = results.cell_status(model, n, "fwd")
                    continue
                available = _memory.available_memory()
                limit = device_limit or min(mem_limit, 0.9 * available if available else mem_limit)
                estimate = estimate_bytes(model, phase, b, n, h, e)
                if estimate > limit:
                    results.status[(model, n, phase)] = "OOM/skipped"
                    log(
                        f"{name}: OOM/skipped (estimated {estimate / GIB:.1f} GiB > "
                        f"{limit / GIB:.1f} GiB)"
                    )
                    continue
                # One subprocess per (model, length, phase): a phase's peak is not raised by memory
                # that an earlier phase left allocated. The core timings (mtsa, fused) ride along
                # after the first phase.
                phases = [phase]
                extra = []
                first = phase == args.phases[0]
                if model in CORE_MODELS and first and not args.no_core:
                    phases += ["core_fwd", "core_train"]
                if model == "explicit" and first and not args.no_check:
                    extra.append("--check-explicit")
                if (
                    model == "mtsa"
                    and phase == "train"
                    and args.nested_jit_check
                    and n == min(args.lengths)
                ):
                    extra.append("--nested-jit-check")
                records, outcome = run(
                    name,
                    [
                        "--model",
                        model,
                        "--length",
                        str(n),
                        *common,
                        "--phases",
                        ",".join(phases),
                        *extra,
                    ],
                )
                if outcome != "ok":
                    done = {r.get("phase") for r in records if r.get("status") == "ok"}
                    for other in phases + (["check"] if extra else []):
                        if other not in done and (model, n, other) not in results.status:
                            results.status[(model, n, other)] = outcome
                    if outcome in ("OOM", "timeout") and phase not in done:
                        failed[(model, phase)] = (outcome, n)
                elif any(r.get("phase") == phase and r.get("status") == "OOM" for r in records):
                    failed[(model, phase)] = ("OOM", n)

    # 3. Report.
    if paths["results"] is None:
        settle_paths()
    report(final=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
