"""A training run on disk: configuration, tokenizers, checkpoints and logs in one folder.

    run_dir/
      config.json             model, training and data settings
      tokenizers/source/      tokenizers saved with `Tokenizer.save`
      tokenizers/target/      (the same files twice when the vocabulary is shared)
      checkpoints/epoch_NNN.weights.h5   model and optimizer variables after each epoch
      progress.json           the epochs finished, their logs and the time spent (the
                              commit record of `RunProgress`, for resuming)
      log.csv, tensorboard/   per-epoch metrics (loss, accuracy, target tokens)
      model.keras             the final model; averaged.weights.h5 the checkpoint average
      training_summary.json   epochs, steps, target tokens/s and cores used of the run

Every file is written atomically (`keras_transformer.files`): a kill leaves the old file
or the new one, never half of it.

`train` resumes an interrupted run from its record (`training/progress.py`): epochs
already finished are not repeated, and the run ends after the same number of epochs and
optimizer steps as an uninterrupted one (or, with a time budget, when the budget is
spent, counting the time before the interruption). A kill after training, while the
averaged weights or model.keras are written, redoes only that last part.
"""

import dataclasses
import json
import math
import os

import keras
import tensorflow as tf

from keras_transformer import distribute
from keras_transformer.config import TransformerConfig
from keras_transformer.data import BatchSettings, PreparedCorpus, make_dataset, shard_dataset
from keras_transformer.data.shards import check_fingerprints, read_manifest
from keras_transformer.errors import InputError, first_line
from keras_transformer.files import atomic_path, atomic_write_text, remove_temporaries
from keras_transformer.model import Transformer
from keras_transformer.text import learning as text_learning
from keras_transformer.text import load_tokenizer
from keras_transformer.text.learning import TOKENIZERS
from keras_transformer.text.tokenizer import METADATA_FILE
from keras_transformer.training.averaging import average_checkpoints, best_average
from keras_transformer.training.budget import TimeBudget
from keras_transformer.training.cooldown import Cooldown, CooldownProgress
from keras_transformer.training.losses import (
    LabelSmoothedCrossEntropy,
    MaskedAccuracy,
    TargetTokens,
)
from keras_transformer.training.progress import RunProgress
from keras_transformer.training.schedule import NoamSchedule, paper_adam

STRATEGIES = ("default", "mirrored", "multiworker", "tpu")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16", "auto")


@dataclasses.dataclass
class TrainingSettings:
    """How a run trains (the model's own settings live in `TransformerConfig`).

    Args:
        epochs: passes over the training pairs (an upper bound with `time_budget`).
        time_budget: seconds of training after which the run stops at the next step
            (None: train all `epochs`); see `TimeBudget`.
        tokens_per_batch: token budget of one batch (the paper: about 25,000).
        max_length: longest tokenized sentence kept (longer pairs are dropped).
        warmup_steps, learning_rate_scale: the Noam schedule.
        cooldown: the share of the run (of `time_budget`, or of `epochs` without one)
            over which the learning rate falls linearly to zero (`Cooldown`); None keeps
            the paper's schedule, which never reaches zero.
        label_smoothing: ε of the loss.
        tokenizer: "wordpiece" or "sentencepiece".
        vocab_size: vocabulary size to learn.
        shared_vocabulary: one vocabulary (and tied embeddings) for both languages.
        average_last: the most epoch checkpoints to average at the end; with dev data
            the run keeps the average of the last k <= average_last with the lowest dev
            loss (`averaging.best_average`).
        seed: for shuffling and weight initialisation.
        jit_compile: compile the training step with XLA: True, False, or "auto" (Keras's
            rule: XLA on accelerators, not on CPU-only machines: on real batches of
            varying lengths XLA compiles one program per bucket shape, minutes of a
            30-minute budget, and oneDNN's bfloat16 kernels are faster once compiled;
            see benchmarks/real_data.py).
        strategy: "default", "mirrored", "multiworker" or "tpu".
        precision: "auto" (the default), "float32", "mixed_bfloat16" or
            "mixed_float16". "auto" (`distribute.resolve_precision`) computes in
            bfloat16 on CPUs with bfloat16 instructions, float32 elsewhere: there it
            trains faster than float32 and per epoch learns as float32 does (README,
            "Real data", has the figures). The variables stay float32, and `load_run` gives a
            mixed-precision run back as a float32 model, which every exporter takes.
    """

    epochs: int = 10
    time_budget: float = None
    tokens_per_batch: int = 4096
    max_length: int = 128
    warmup_steps: int = 4000
    learning_rate_scale: float = 1.0
    cooldown: float = None
    label_smoothing: float = 0.1
    tokenizer: str = "sentencepiece"
    vocab_size: int = 8000
    shared_vocabulary: bool = True
    average_last: int = 5
    seed: int = 0
    jit_compile: bool | str = "auto"
    strategy: str = "default"
    precision: str = "auto"

    def __post_init__(self):
        if self.tokenizer not in TOKENIZERS:
            raise InputError(
                f"tokenizer must be one of {sorted(TOKENIZERS)}; got {self.tokenizer!r}"
            )
        if self.jit_compile not in (True, False, "auto"):
            raise InputError(f"jit_compile must be True, False or 'auto'; got {self.jit_compile!r}")
        for name in (
            "epochs",
            "tokens_per_batch",
            "max_length",
            "vocab_size",
            "average_last",
            "warmup_steps",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"{name} must be an int of at least 1; got {value!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise InputError(f"seed must be an int >= 0; got {self.seed!r}")
        for name in ("time_budget", "learning_rate_scale", "label_smoothing"):
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, (int, float)) or isinstance(value, bool)
            ):
                raise InputError(f"{name} must be a number; got {value!r}")
        if not 0 < self.learning_rate_scale < math.inf:
            raise InputError(
                f"learning_rate_scale must be positive and finite (a negative rate would "
                f"climb the loss); got {self.learning_rate_scale!r}"
            )
        if self.cooldown is not None and not (
            isinstance(self.cooldown, (int, float))
            and not isinstance(self.cooldown, bool)
            and 0 < self.cooldown <= 1
        ):
            raise InputError(
                f"cooldown must be a share of the run in (0, 1] or None; got {self.cooldown!r}"
            )
        if not 0 <= self.label_smoothing < 1:
            raise InputError(f"label_smoothing must be in [0, 1); got {self.label_smoothing!r}")
        if self.strategy not in STRATEGIES:
            raise InputError(f"strategy must be one of {STRATEGIES}; got {self.strategy!r}")
        if self.precision not in PRECISIONS:
            raise InputError(f"precision must be one of {PRECISIONS}; got {self.precision!r}")
        if not isinstance(self.shared_vocabulary, bool):
            raise InputError(
                f"shared_vocabulary must be true or false; got {self.shared_vocabulary!r}"
            )
        if self.time_budget is not None and not 0 < self.time_budget < math.inf:
            raise InputError(
                f"time_budget must be a positive, finite number of seconds or None (no "
                f"budget); got {self.time_budget!r}"
            )
        if self.tokens_per_batch < self.max_length:
            raise InputError(
                f"tokens_per_batch ({self.tokens_per_batch}) must be at least max_length "
                f"({self.max_length}), so that a batch of one longest pair fits the budget"
            )

    def batching(self, jit_compile):
        """The `BatchSettings` of the training batches, shuffled with the run's seed.

        Under XLA every new batch shape is a new compilation: padding batches to their
        bucket's length bounds the shapes to one per bucket. `jit_compile` is the
        model's resolved choice (`model.jit_compile`: "auto" means XLA with a GPU, none
        on CPU-only machines)."""
        return BatchSettings(
            tokens_per_batch=self.tokens_per_batch,
            max_length=self.max_length,
            shuffle=True,
            seed=self.seed,
            pad_to_bucket=bool(jit_compile),
        )


# The training settings that go with a model preset when `keras-transformer train
# --preset` names it (flags still override them). "small" is tuned on the real-data
# benchmark (benchmarks/real_data.py): a half-hour CPU budget allows about 2,000 steps,
# so the paper's 4,000 warm-up steps would end training before the peak rate; a shorter
# warm-up and a cool-down to zero over the last 40 % of the run learn more in the same
# steps (README, "Warm-up and cool-down").
PRESET_SETTINGS = {
    "small": dict(warmup_steps=600, cooldown=0.4),
}


@dataclasses.dataclass
class Run:
    """What a run directory holds, loaded: the model and its two tokenizers, and (from
    `train`) the logged history and the optimizer steps taken."""

    directory: str
    model: Transformer
    source_tokenizer: object
    target_tokenizer: object
    settings: TrainingSettings
    history: dict = dataclasses.field(default_factory=dict)
    steps: int = None


def _path(run_dir, *parts):
    return os.path.join(run_dir, *parts)


def learn_tokenizers(pairs, settings):
    """The (source, target) tokenizers `train` learns from training `pairs` under
    `settings` (one shared tokenizer, returned twice, with `shared_vocabulary`)."""
    return text_learning.learn_tokenizers(
        pairs, settings.tokenizer, settings.vocab_size, settings.shared_vocabulary
    )


def _tokenizers(run_dir, corpus, settings):
    """Learns the tokenizers from the training pairs, or loads those the run holds."""
    source_dir = _path(run_dir, "tokenizers", "source")
    target_dir = _path(run_dir, "tokenizers", "target")
    # tokenizer.json is written last: a save killed half-way is learned again.
    if all(os.path.isfile(os.path.join(d, METADATA_FILE)) for d in (source_dir, target_dir)):
        return load_tokenizer(source_dir), load_tokenizer(target_dir)
    if isinstance(corpus, PreparedCorpus):
        # The ids in the shards are those of the prepared directory's tokenizers.
        source_tokenizer, target_tokenizer = (
            load_tokenizer(_path(corpus.train, "tokenizers", side)) for side in ("source", "target")
        )
    else:
        source_tokenizer, target_tokenizer = learn_tokenizers(corpus.train, settings)
    source_tokenizer.save(source_dir)
    target_tokenizer.save(target_dir)
    return source_tokenizer, target_tokenizer


def _write_config(run_dir, model_config, settings, data, tokenizers):
    """Writes config.json; refuses to resume a run of another model or tokenizers."""
    path = _path(run_dir, "config.json")
    config = {
        "model": model_config.to_dict(),
        "training": dataclasses.asdict(settings),
        "data": data,
        "tokenizers": tokenizers,
    }
    if os.path.isfile(path):
        saved = _read_json(path)
        if saved.get("model") != config["model"]:
            raise InputError(
                f"{run_dir} holds a run of another model configuration; use a new run "
                "directory or the same settings to resume it"
            )
        if saved.get("tokenizers", tokenizers) != tokenizers:
            raise InputError(
                f"the tokenizers in {run_dir} are not those the run was trained with "
                f"(fingerprints {saved['tokenizers']} in config.json)"
            )
    atomic_write_text(path, json.dumps(config, indent=2))


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
    except (OSError, ValueError) as error:
        raise InputError(f"{path} is not a valid run configuration: {error}") from error
    if not isinstance(config, dict):
        raise InputError(f"{path} is not a valid run configuration: not a JSON object")
    return config


def read_config(run_dir: str) -> tuple[TransformerConfig, "TrainingSettings", dict]:
    """(TransformerConfig, TrainingSettings, data description) of a run directory."""
    model_config, settings, config = _read_run_config(run_dir)
    return model_config, settings, config.get("data", {})


def _read_run_config(run_dir):
    """(TransformerConfig, TrainingSettings, the whole config.json dict) of a run."""
    path = _path(run_dir, "config.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{run_dir} is not a training run: {path} is missing (create one with "
            "`keras-transformer train`)"
        )
    config = _read_json(path)
    try:
        return (
            TransformerConfig(**config["model"]),
            TrainingSettings(**config["training"]),
            config,
        )
    except (KeyError, TypeError) as error:
        raise InputError(f"{path} is not a valid run configuration: {error}") from error


def train(
    run_dir: str,
    corpus,
    model_config: TransformerConfig,
    settings: "TrainingSettings | None" = None,
    data: dict | None = None,
    callbacks=(),
    verbose="auto",
) -> "Run":
    """Trains (or resumes) the run in `run_dir` on `corpus.train`, validating on
    `corpus.dev`, and returns the `Run`.

    Args:
        run_dir: the run directory (created if needed).
        corpus: an object with `.train` and `.dev` lists of (source, target) pairs, or
            a `PreparedCorpus` (its tokenizers are the run's; with the multiworker
            strategy each worker reads its own shards).
        model_config: `TransformerConfig`; its vocabulary sizes are replaced by those
            of the learned tokenizers and its max_length raised to the settings' if lower.
        settings: `TrainingSettings`.
        data: a JSON-able description of where the corpus came from, kept in config.json.
        callbacks: more Keras callbacks.

    The run's model computes in float32 whatever precision trained it (a
    mixed-precision run hands back a float32 copy of its float32 variables, as
    `load_run` does), so it translates and exports as a loaded run would; the global
    Keras dtype policy is the caller's again afterwards.
    """
    settings = settings or TrainingSettings()
    if os.path.isfile(_path(run_dir, "model.keras")):
        raise FileExistsError(
            f"{run_dir} holds a finished run; train into a new run directory (an "
            "interrupted run, which has no model.keras yet, resumes in place)"
        )
    os.makedirs(run_dir, exist_ok=True)
    for directory in (
        run_dir,
        _path(run_dir, "checkpoints"),
        _path(run_dir, "tokenizers", "source"),
        _path(run_dir, "tokenizers", "target"),
    ):
        remove_temporaries(directory)  # left by writes that a kill interrupted
    precision = distribute.resolve_precision(settings.precision)
    callers_policy = keras.mixed_precision.global_policy()
    distribute.set_precision(precision)
    keras.utils.set_random_seed(settings.seed)
    source_tokenizer, target_tokenizer = _tokenizers(run_dir, corpus, settings)
    shared = source_tokenizer.fingerprint == target_tokenizer.fingerprint
    model_config = dataclasses.replace(
        model_config,
        src_vocab_size=source_tokenizer.vocab_size,
        tgt_vocab_size=target_tokenizer.vocab_size,
        share_embeddings=model_config.share_embeddings and shared,
        max_length=max(model_config.max_length, settings.max_length + 1),
    )

    if isinstance(corpus, PreparedCorpus):
        for directory in filter(None, (corpus.train, corpus.dev)):
            check_fingerprints(
                directory, read_manifest(directory), source_tokenizer, target_tokenizer
            )
    schedule = None  # made in the strategy's scope, with the optimizer

    def optimizer_fn():
        nonlocal schedule
        schedule = NoamSchedule(
            model_config.d_model, settings.warmup_steps, settings.learning_rate_scale
        )
        if settings.cooldown is not None:
            schedule = Cooldown(schedule, settings.cooldown)
        return paper_adam(schedule)

    model = distribute.build_in_scope(
        distribute.make_strategy(settings.strategy),
        model_fn=lambda: Transformer(**model_config.to_dict()),
        optimizer_fn=optimizer_fn,
        loss=LabelSmoothedCrossEntropy(settings.label_smoothing),
        metrics=[MaskedAccuracy(), TargetTokens()],
        jit_compile=settings.jit_compile,
        precision=precision,
    )
    # Written once the model is built, so that a configuration the model refuses
    # leaves no config.json that would hold the corrected command back.
    _write_config(
        run_dir,
        model_config,
        settings,
        data or {},
        {"source": source_tokenizer.fingerprint, "target": target_tokenizer.fingerprint},
    )

    batching = settings.batching(model.jit_compile)
    if isinstance(corpus, PreparedCorpus):
        train_data, dev_data = _prepared_datasets(corpus, settings, batching)
    else:
        train_data = make_dataset(corpus.train, source_tokenizer, target_tokenizer, batching)
        dev_data = (
            make_dataset(corpus.dev, source_tokenizer, target_tokenizer, batching, shuffle=False)
            if corpus.dev
            else None
        )

    budget = TimeBudget(settings.time_budget)
    if isinstance(schedule, Cooldown):
        callbacks = [CooldownProgress(schedule, budget), *callbacks]
    progress = RunProgress(run_dir, budget)
    initial_epoch = progress.restore(model)
    if not progress.finished:
        model.fit(
            train_data,
            validation_data=dev_data,
            epochs=settings.epochs,
            initial_epoch=initial_epoch,
            verbose=verbose,
            callbacks=[
                budget,
                keras.callbacks.TensorBoard(_path(run_dir, "tensorboard")),
                *callbacks,
                progress,
            ],
        )
    history = {
        key: [row[key] for row in progress.history if key in row]
        for key in {key for row in progress.history for key in row} - {"epoch"}
    }
    # The averaged weights are written before model.keras, whose presence marks the
    # run finished: a kill in between leaves an unfinished run that resumes.
    checkpoints = progress.checkpoints(settings.average_last)
    last_weights = model.get_weights()  # what model.keras keeps, as before averaging
    if dev_data is not None:
        averaged, dev_losses = best_average(model, checkpoints, dev_data)
    else:
        average_checkpoints(model, checkpoints)
        averaged, dev_losses = len(checkpoints), {}
    atomic_write_text(
        _path(run_dir, "training_summary.json"),
        json.dumps(
            dict(
                budget.summary(),
                precision=precision,
                checkpoints_averaged=averaged,
                dev_loss_by_checkpoints_averaged=dev_losses,
            ),
            indent=2,
        ),
    )
    with atomic_path(_path(run_dir, "averaged.weights.h5")) as temporary:
        model.save_weights(temporary)
    averaged_weights = model.get_weights()
    model.set_weights(last_weights)
    with atomic_path(_path(run_dir, "model.keras")) as temporary:
        model.save(temporary)
    model.set_weights(averaged_weights)
    steps = int(model.optimizer.iterations)
    keras.mixed_precision.set_global_policy(callers_policy)
    if model.dtype_policy.name != "float32":
        model = _float32_copy(model, model_config)
    return Run(run_dir, model, source_tokenizer, target_tokenizer, settings, history, steps)


def _prepared_datasets(corpus, settings, batching):
    """The training and dev datasets of a `PreparedCorpus`: with the multiworker
    strategy, each worker's own shards of the training pairs, and TensorFlow's own
    sharding switched off (it would split them again); every worker validates on all
    the dev pairs."""
    workers, index = (
        distribute.worker_count_and_index() if settings.strategy == "multiworker" else (1, 0)
    )
    train_data = shard_dataset(
        corpus.train, batching=batching, num_workers=workers, worker_index=index
    )
    dev_data = shard_dataset(corpus.dev, batching=batching, shuffle=False) if corpus.dev else None
    if workers > 1:
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        train_data = train_data.with_options(options)
    return train_data, dev_data


def _float32_copy(model, model_config):
    """The model rebuilt in float32 with the same weights. A run trained in mixed
    precision keeps float32 variables but computes in bfloat16 (or float16) layers,
    which TFLite's builtin ops refuse; the copy computes in float32, as every exporter
    and runtime takes it, from the very same numbers."""
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        copy = Transformer(**model_config.to_dict())
        copy.build()
    finally:
        keras.mixed_precision.set_global_policy(policy)
    copy.set_weights(model.get_weights())
    return copy


def load_run(run_dir: str, weights: str = "averaged") -> "Run":
    """Loads a finished run: its model with the averaged (or "last") weights and its
    tokenizers."""
    if weights not in ("averaged", "last"):
        raise InputError(f"weights must be 'averaged' or 'last'; got {weights!r}")
    model_config, settings, config = _read_run_config(run_dir)
    model_path = _path(run_dir, "model.keras")
    if not os.path.isfile(model_path):
        raise FileNotFoundError(
            f"{run_dir} has no trained model ({model_path} is missing): the run has not "
            "finished training"
        )
    try:
        model = keras.saving.load_model(model_path)
    except Exception as error:  # zipfile, h5py and Keras each raise their own kinds
        raise InputError(
            f"{model_path} is damaged and cannot be loaded ({first_line(error)}); "
            "delete it and run the same train command again to rewrite it "
            "from the checkpoints"
        ) from error
    if weights == "averaged":
        averaged_path = _path(run_dir, "averaged.weights.h5")
        try:
            model.load_weights(averaged_path)
        except Exception as error:
            raise InputError(
                f"{averaged_path} is damaged or missing ({first_line(error)}); rewrite it "
                "with `keras-transformer average-checkpoints`"
            ) from error
    if model.dtype_policy.name != "float32":
        model = _float32_copy(model, model_config)
    # Runs written before fingerprints were recorded are checked by vocabulary size only.
    recorded = config.get("tokenizers") or {}
    if not isinstance(recorded, dict):
        raise InputError(
            f"{_path(run_dir, 'config.json')} is not a valid run configuration: "
            f"'tokenizers' must be an object of fingerprints; got {recorded!r}"
        )
    source_tokenizer, target_tokenizer = (
        load_tokenizer(_path(run_dir, "tokenizers", side), expected_fingerprint=recorded.get(side))
        for side in ("source", "target")
    )
    if (source_tokenizer.vocab_size, target_tokenizer.vocab_size) != (
        model_config.src_vocab_size,
        model_config.tgt_vocab_size,
    ):
        raise InputError(
            f"the tokenizers in {run_dir} do not match the model's vocabularies "
            f"({source_tokenizer.vocab_size}/{target_tokenizer.vocab_size} tokens against "
            f"{model_config.src_vocab_size}/{model_config.tgt_vocab_size})"
        )
    return Run(run_dir, model, source_tokenizer, target_tokenizer, settings)
