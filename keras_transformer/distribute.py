"""Data-parallel training on TensorFlow's own engine (tf.distribute) and mixed precision.

Every replica holds a copy of the model, trains on its slice of each global batch, and
the gradients are summed across the R replicas before one shared update:

    g = Σ_r ∂L_r/∂θ        (all-reduce)

Keras 3 (3.15) divides a loss by R only when it reduces a per-sample vector
("sum_over_batch_size"); a loss whose `call` already returns a scalar, such as
`LabelSmoothedCrossEntropy`'s token mean, is passed through unscaled. Under R replicas
that loss therefore trains on R × the mean of the per-replica token means: the step is
R times too large for SGD, and even with Adam (which cancels the factor) a replica with
few non-padding tokens (bucketed batches, the last batch, a batch smaller than R that
leaves a replica empty) weighs as much as one with many. `GlobalTokenMean`
(training/losses.py) gives every
replica the value S_r / N (S_r: its summed token losses, N: the non-padding tokens of
the whole global batch, all-reduced), so that

    Σ_r S_r / N        = the one-device loss of the global batch, whatever the split.

Example (without GPUs, `split_logical_cpus(2)` as the program's first statement gives
two CPU replicas; here there is one replica per GPU, or the CPU):

>>> strategy = make_strategy("mirrored")
>>> set_precision("mixed_bfloat16")
>>> model = build_in_scope(
...     strategy,
...     lambda: kt.Transformer.from_preset("tiny", num_layers=1, src_vocab_size=20,
...                                        tgt_vocab_size=20),
...     lambda: kt.training.paper_optimizer(64), kt.training.LabelSmoothedCrossEntropy(0.1),
...     precision="mixed_bfloat16")
>>> ids = np.array([[5, 6, 7, 3]] * 4, np.int32)     # a toy batch
>>> dataset = tf.data.Dataset.from_tensors(((ids, ids), ids)).repeat(2)
>>> history = model.fit(dataset, epochs=2, verbose=0,
...                     callbacks=[keras.callbacks.BackupAndRestore("backup")])
>>> len(history.history["loss"])
2
"""

import json
import os
import warnings

import keras
import tensorflow as tf
from keras import ops

from keras_transformer.errors import InputError
from keras_transformer.training.losses import GlobalTokenMean

STRATEGIES = ("default", "mirrored", "multiworker", "tpu")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


def split_logical_cpus(n):
    """Splits the first physical CPU into `n` logical devices (/cpu:0 … /cpu:n-1), so a
    `MirroredStrategy` can run n replicas on one machine without GPUs.

    Must run before TensorFlow initialises its devices (before the first op, tensor or
    strategy); calling again with the same n afterwards is a no-op."""
    if not isinstance(n, int) or n < 1:
        raise InputError(f"n must be a positive int (the number of logical CPUs); got {n!r}")
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) == n:
        return
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(n)]
        )
    except RuntimeError as error:
        have = len(tf.config.list_logical_devices("CPU"))
        raise RuntimeError(
            f"cannot split the CPU into {n} logical devices: TensorFlow has already "
            f"initialised its devices ({have} logical CPU(s)). Call split_logical_cpus() at "
            "the start of the program, before any tensor, model or strategy is created"
        ) from error


def _check_tf_config():
    """The parsed TF_CONFIG of a multi-worker job, or a ValueError saying what is expected."""
    example = (
        '{"cluster": {"worker": ["host0:12345", "host1:12345"]}, '
        '"task": {"type": "worker", "index": 0}}'
    )
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise InputError(
            "the multiworker strategy reads the cluster from the TF_CONFIG environment "
            f"variable, which is not set; set it on every worker, e.g. TF_CONFIG='{example}' "
            "(same cluster everywhere, task.index = this worker's position in the list)"
        )
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as error:
        raise InputError(f"TF_CONFIG is not valid JSON ({error}); expected e.g. {example}")
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    workers = (cluster or {}).get("worker") if isinstance(cluster, dict) else None
    if not workers or not isinstance(workers, list) or not isinstance(task, dict):
        raise InputError(
            "TF_CONFIG must hold a 'cluster' with a non-empty 'worker' list of host:port "
            f"and a 'task' with 'type' and 'index'; got {raw!r}; expected e.g. {example}"
        )
    kind, index = task.get("type"), task.get("index")
    size = len(cluster.get(kind, [])) if isinstance(cluster.get(kind), list) else 0
    if kind not in ("worker", "chief") or not isinstance(index, int) or not 0 <= index < size:
        raise InputError(
            f"TF_CONFIG task must be {{'type': 'worker' or 'chief', 'index': 0..{size - 1}}} "
            f"naming this process's entry in the cluster; got {task!r}"
        )
    return config


def worker_count_and_index():
    """(number of workers, this worker's position) of the multi-worker job TF_CONFIG
    describes, the chief first when there is one."""
    config = _check_tf_config()
    cluster, task = config["cluster"], config["task"]
    chiefs = len(cluster.get("chief", []))
    index = task["index"] if task["type"] == "chief" else chiefs + task["index"]
    return chiefs + len(cluster["worker"]), index


def make_strategy(name, tpu=None, devices=None):
    """A `tf.distribute.Strategy` by name.

    Args:
        name: "default" (no distribution: `tf.distribute.get_strategy()`), "mirrored"
            (one machine, a replica per GPU, or per logical CPU when there is no GPU),
            "multiworker" (several machines described by TF_CONFIG, a replica per
            device of every worker), "tpu" (a TPU or TPU pod slice).
        tpu: for "tpu", the TPU's name or grpc:// address (None: the one the
            environment names, as on a Cloud TPU VM).
        devices: for "mirrored", an explicit device list, e.g. ["/cpu:0", "/cpu:1"].

    Returns:
        the strategy; build and compile the model under `strategy.scope()`
        (`build_in_scope`).
    """
    if name not in STRATEGIES:
        raise InputError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    if name != "mirrored" and devices is not None:
        raise InputError(f"devices applies to the mirrored strategy only; got it for {name!r}")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if devices is None:
            gpus = tf.config.list_logical_devices("GPU")
            devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multiworker":
        _check_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as error:
        raise RuntimeError(
            f"no TPU found (tpu={tpu!r}): {str(error).rstrip('.')}. Run on a Cloud TPU VM "
            "or pass the TPU's name or grpc:// address; without a TPU use --strategy "
            "mirrored or default"
        ) from error
    return tf.distribute.TPUStrategy(resolver)


def cpu_has_bfloat16():
    """Whether this CPU has bfloat16 matrix instructions (AVX512-BF16 or AMX-BF16), which
    oneDNN uses for bfloat16 matmuls (Linux: the flags of /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo") as handle:
            flags = handle.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(name):
    """The precision "auto" stands for on this machine, or `name` itself.

    "auto" is "mixed_bfloat16" on CPU-only machines whose CPU has bfloat16 instructions
    (oneDNN's bfloat16 kernels train the model faster there than float32, with float32
    variables and loss: benchmarks/real_data.py, figures in the README), else "float32" (on GPUs,
    choose "mixed_float16" or "mixed_bfloat16" yourself: it depends on the chip)."""
    if name != "auto":
        return name
    if not tf.config.list_physical_devices("GPU") and cpu_has_bfloat16():
        return "mixed_bfloat16"
    return "float32"


def set_precision(name):
    """Sets the Keras global dtype policy: "float32", "mixed_bfloat16" (bfloat16
    compute, float32 variables; TPUs and recent CPUs/GPUs) or "mixed_float16" (float16
    compute, float32 variables; GPUs, needs loss scaling: `wrap_optimizer`). Call before
    building the model."""
    if name not in PRECISIONS:
        raise InputError(f"unknown precision {name!r}; choose one of {', '.join(PRECISIONS)}")
    keras.mixed_precision.set_global_policy(name)


def wrap_optimizer(optimizer, precision):
    """`optimizer` wrapped in a dynamic `keras.optimizers.LossScaleOptimizer` for
    "mixed_float16" (small float16 gradients would otherwise flush to zero), unchanged
    for the other precisions."""
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "mixed_float16" and not isinstance(
        optimizer, keras.optimizers.LossScaleOptimizer
    ):
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def _vector_logs(step):
    def step_with_vector_logs(data):
        return {
            key: ops.reshape(value, (1,)) if len(value.shape) == 0 else value
            for key, value in step(data).items()
        }

    return step_with_vector_logs


def build_in_scope(
    strategy,
    model_fn,
    optimizer_fn,
    loss,
    metrics=None,
    jit_compile="auto",
    precision=None,
    global_token_mean=True,
):
    """Builds, compiles and returns `model_fn()` with its variables placed by `strategy`.

    Args:
        strategy: from `make_strategy`.
        model_fn: () -> an unbuilt `keras.Model` taking ((src, tgt_in)).
        optimizer_fn: () -> a Keras optimizer (created in scope, so its slots are
            mirrored too).
        loss: the training loss; wrapped in `GlobalTokenMean` unless
            `global_token_mean=False`.
        metrics: passed to `compile`.
        jit_compile: passed to `compile` (XLA); True falls back to False, with a
            warning, for several replicas on CPU devices, where XLA fails.
        precision: when given, the optimizer goes through `wrap_optimizer(…, precision)`;
            the dtype policy itself is `set_precision`'s job and must precede this call.

    The model, its compiled loss and metrics are built on a (1, 2) batch inside the
    scope, so that `BackupAndRestore` can restore into it before the first step.
    """
    devices = strategy.extended.worker_devices if strategy.num_replicas_in_sync > 1 else ()
    if jit_compile is True and len(devices) > 1 and all("CPU" in d.upper() for d in devices):
        warnings.warn(
            f"jit_compile=True does not work with {len(devices)} replicas on CPU devices (XLA "
            "cannot reach variables on another CPU device); compiling without XLA",
            stacklevel=2,
        )
        jit_compile = False
    if global_token_mean and not isinstance(loss, GlobalTokenMean):
        loss = GlobalTokenMean(loss)
    with strategy.scope():
        model = model_fn()
        ids = ops.ones((1, 2), "int32")
        model((ids, ids))
        optimizer = optimizer_fn()
        if precision is not None:
            optimizer = wrap_optimizer(optimizer, precision)
        model.compile(optimizer=optimizer, loss=loss, metrics=metrics, jit_compile=jit_compile)
        # Build the compiled loss and metrics here: left unbuilt, fit() under a strategy
        # builds them from a first batch that it MEAN-reduces across replicas, which
        # turns the int ids into floats that the model rejects.
        y_pred = model((ids, ids))
        model.compute_loss(x=(ids, ids), y=ids, y_pred=y_pred)
        if metrics:
            model.compute_metrics((ids, ids), ids, y_pred, sample_weight=None)
            model.reset_metrics()
        model.optimizer.build(model.trainable_variables)
    # Everything is built now, yet Keras 3.15's fit/evaluate under a strategy still
    # reduces a first batch across replicas to build symbolically, and
    # MultiWorkerMirroredStrategy cannot reduce the nested ((src, tgt_in), tgt_out)
    # (its _reduce_to does not map over structures). Skip that step for this model.
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        # Keras 3.15 averages each step's logs across workers with reduce(MEAN, axis=0),
        # which fails for scalars: hand it (1,) vectors, which it averages to scalars.
        for name in ("train_step", "test_step"):
            setattr(model, name, _vector_logs(getattr(model, name)))
    return model
