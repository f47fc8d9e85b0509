"""The `keras-transformer` command line.

    keras-transformer train     --run-dir runs/en-de --preset tiny --data embedded
    keras-transformer train     --run-dir runs/en-fr --preset small --data gettext \
                                --target-lang fr --time-budget 1800
    keras-transformer prepare   --input train.en train.de --output prepared/en-de
    keras-transformer train     --run-dir runs/en-de --data prepared --train prepared/en-de
    keras-transformer evaluate  --run-dir runs/en-de
    keras-transformer translate --run-dir runs/en-de "twenty-one" < more.txt
    keras-transformer export    --run-dir runs/en-de --format saved_model|tflite|onnx
    keras-transformer average-checkpoints --run-dir runs/en-de --last 5
    keras-transformer plot      attention|lr|loss --run-dir runs/en-de
    keras-transformer demo      (what `make demo` runs)

A mistake a user can make (a missing run directory, an unknown preset, an unreadable
file: an `InputError` or a file error) prints one line to stderr and exits with status
2, without a traceback; any other exception is a fault of ours and keeps its traceback.
"""

import argparse
import dataclasses
import json
import os
import sys

# Running this module imports the package first: its __init__ loads TensorFlow, with
# TF_CPP_MIN_LOG_LEVEL at 3 unless the user set it (keras_transformer/startup_logs.py),
# so taking the library's own defaults here costs nothing more.
from keras_transformer.data.gettext_corpus import DEFAULT_LOCALE_DIR
from keras_transformer.data.readers import decode_lines
from keras_transformer.data.sources import load_corpus
from keras_transformer.errors import InputError
from keras_transformer.files import atomic_path
from keras_transformer.settings_flags import add_settings_flags, given_settings
from keras_transformer.translator import DECODE_BATCH_SIZE

USER_ERRORS = (
    InputError,
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
    UnicodeDecodeError,
    ChildProcessError,
)  # a worker of `prepare` killed: the message says what to do

# The library's errors name the Python argument that would accept the input; on the
# command line the flag that sets it is named instead.
FLAGS_FOR_ARGUMENTS = {"overwrite=True": "--overwrite", "skip_bad_lines=True": "--skip-bad-lines"}


class UsageError(Exception):
    """A mistake in the command line itself."""


def positive_int(text):
    """argparse type: an int >= 1."""
    return _int_at_least(text, 1)


def non_negative_int(text):
    """argparse type: an int >= 0."""
    return _int_at_least(text, 0)


def _int_at_least(text, least):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int; got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"expected an int >= {least}; got {value}")
    return value


def _parse_overrides(pairs):
    """["d_model=128", "norm_first=true"] -> {"d_model": 128, "norm_first": True}."""
    overrides = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise UsageError(f"--set expects key=value; got {pair!r}")
        key, value = pair.split("=", 1)
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return overrides


def _read_config_file(path):
    """The JSON file `path` given to --config: {"model": {...}, "training": {...}}, each
    object optional."""
    try:
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
    except ValueError as error:
        raise InputError(f"--config {path} is not valid JSON: {error}") from error
    if not isinstance(config, dict) or not all(
        isinstance(config.get(section, {}), dict) for section in ("model", "training")
    ):
        raise InputError(
            f"--config {path} must hold a JSON object with 'model' and 'training' objects"
        )
    return config


def _training_settings(args, file_config, defaults):
    """TrainingSettings from `defaults`, then the config file's "training" object, then
    the flags given."""
    from keras_transformer.runs import TrainingSettings

    values = dict(defaults or {})
    values.update(file_config.get("training", {}))
    values.update(given_settings(args, TrainingSettings))
    fields = {f.name for f in dataclasses.fields(TrainingSettings)}
    unknown = set(values) - fields
    if unknown:
        raise InputError(f"unknown training settings {sorted(unknown)}; known: {sorted(fields)}")
    return TrainingSettings(**values)


def _data_description(args):
    data = {"source": args.data}
    if args.data == "embedded":
        data.update(target_lang=args.target_lang, train_size=args.train_size, seed=args.seed or 0)
    elif args.data == "gettext":
        data.update(
            target_lang=args.target_lang,
            locale_dir=os.path.abspath(args.locale_dir),
            seed=args.seed or 0,
        )
    elif args.data in ("tsv", "aligned", "prepared"):
        for split in ("train", "dev", "test"):
            paths = getattr(args, split)
            if paths:
                expected = 2 if args.data == "aligned" else 1
                if len(paths) != expected:
                    raise UsageError(
                        f"--{split} takes {expected} path(s) with --data {args.data}; "
                        f"got {len(paths)}"
                    )
                data[split] = [os.path.abspath(p) for p in paths]
        if args.data == "prepared":
            if args.test:
                raise UsageError("--data prepared takes --train and --dev directories only")
            if not args.train:
                raise UsageError(
                    "--data prepared needs --train DIR (written by `keras-transformer prepare`)"
                )
        else:
            data["skip_bad_lines"] = args.skip_bad_lines
    else:
        data.update(tfds_name=args.tfds_name, data_dir=args.data_dir)
    return data


# With a time budget and no --epochs, the budget alone ends the run.
UNBOUNDED_EPOCHS = 100_000


def cmd_train(args):
    from keras_transformer import runs
    from keras_transformer.config import TransformerConfig

    file_config = _read_config_file(args.config) if args.config else {}
    overrides = dict(file_config.get("model", {}))
    overrides.update(_parse_overrides(args.set))
    model_config = TransformerConfig.from_preset(args.preset, **overrides)
    if args.time_budget is not None and args.epochs is None:
        args.epochs = UNBOUNDED_EPOCHS
    settings = _training_settings(args, file_config, runs.PRESET_SETTINGS.get(args.preset))
    data = _data_description(args)
    result = runs.train(args.run_dir, load_corpus(data), model_config, settings, data=data)
    print(
        f"trained {args.run_dir}: final loss {result.history['loss'][-1]:.4f}, "
        f"{result.steps} optimizer steps"
    )


def _translator(args):
    from keras_transformer.runs import load_run
    from keras_transformer.translator import Translator

    loaded = load_run(args.run_dir, weights=args.weights)
    return Translator(
        loaded.model,
        loaded.source_tokenizer,
        loaded.target_tokenizer,
        beam_size=args.beam_size,
        alpha=args.alpha,
    )


def cmd_evaluate(args):
    from keras_transformer.evaluation import evaluate
    from keras_transformer.runs import read_config

    _, _, data = read_config(args.run_dir)
    if data.get("source") == "prepared":
        raise InputError(
            "the run was trained on a prepared corpus, which holds token ids, "
            "not text; evaluate it on text pairs with `keras-transformer "
            "translate --file` and your own scorer"
        )
    pairs = getattr(load_corpus(data), args.split)
    if not pairs:
        raise InputError(f"the run's data has no {args.split} split to evaluate on")
    if args.limit:
        pairs = pairs[: args.limit]
    translator = _translator(args)
    sources = [s for s, _ in pairs]
    scores = evaluate(
        translator,
        sources,
        [t for _, t in pairs],
        batch_size=args.batch_size,
        bleu_tokenize=args.bleu_tokenize,
    )
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in scores.items()}))
    for source, hypothesis in zip(sources[: args.samples], translator(sources[: args.samples])):
        print(f"{source}  ->  {hypothesis}")
    return scores


def cmd_translate(args):
    translator = _translator(args)
    if args.text:
        for line in translator(list(args.text)):
            print(line)
        return
    if args.file:
        from keras_transformer.translator import translate_in_batches

        with open(args.file, "rb") as handle:
            lines = list(decode_lines(handle, args.file))
        for line in translate_in_batches(translator, lines, args.batch_size, progress=True):
            print(line)
        return
    for line in decode_lines(sys.stdin.buffer, "stdin"):
        print(translator([line])[0], flush=True)


def cmd_prepare(args):
    from keras_transformer import data as data_lib
    from keras_transformer.text import load_tokenizer

    if len(args.input) not in (1, 2):
        raise UsageError(
            f"--input takes a TSV file, or source and target files; got {len(args.input)} paths"
        )
    tokenizers = None
    if args.tokenizers:
        tokenizers = [
            load_tokenizer(os.path.join(args.tokenizers, "tokenizers", side))
            for side in ("source", "target")
        ]
    manifest = data_lib.prepare(
        args.output,
        *args.input,
        tokenizers=tokenizers,
        tokenizer=args.tokenizer,
        vocab_size=args.vocab_size,
        shared_vocabulary=not args.separate_vocabularies,
        sample_size=args.sample_size,
        max_length=args.max_length,
        truncate=args.truncate,
        pairs_per_shard=args.pairs_per_shard,
        workers=args.workers,
        seed=args.seed,
        skip_bad_lines=args.skip_bad_lines,
    )
    sample = manifest["tokenizer_sample"]
    if sample:
        print(
            f"tokenizers learned on a seeded sample of {sample['pairs']:,} of "
            f"{sample['of']:,} pairs (seed {sample['seed']})"
        )
    else:
        print(f"tokenizers taken from {args.tokenizers}")
    print(
        f"{args.output}: {len(manifest['shards'])} shards, {manifest['pairs']:,} pairs, "
        f"{manifest['source_tokens']:,} source and {manifest['target_tokens']:,} target "
        f"tokens; {manifest['dropped']:,} dropped and {manifest['truncated']:,} truncated "
        f"for max_length {manifest['settings']['max_length']}, "
        f"{manifest['skipped_lines']:,} malformed lines skipped"
    )


def cmd_export(args):
    from keras_transformer import export

    if args.format == "saved_model" and args.quantization:
        raise UsageError("--quantization applies to --format tflite and onnx only")
    if args.format == "onnx" and args.quantization == "float16":
        raise UsageError("--quantization float16 applies to --format tflite only")
    translator = _translator(args)
    name = args.name or os.path.basename(os.path.normpath(args.run_dir))
    suffix = f"_{args.quantization}" if args.quantization else ""
    if args.format == "saved_model":
        path = export.export_saved_model(
            translator,
            os.path.join(args.output, name),
            version=args.version,
            overwrite=args.overwrite,
        )
    elif args.format == "tflite":
        path = export.export_tflite(
            translator,
            os.path.join(args.output, f"{name}{suffix}.tflite"),
            quantization=args.quantization,
            overwrite=args.overwrite,
        )
    else:
        path = export.export_onnx(
            translator,
            os.path.join(args.output, f"{name}_onnx{suffix}"),
            overwrite=args.overwrite,
            quantization=args.quantization,
        )[0]
        path = os.path.dirname(path)
    print(path)


def cmd_average(args):
    import keras

    from keras_transformer.runs import read_config
    from keras_transformer.training.averaging import average_checkpoints, last_checkpoints

    read_config(args.run_dir)
    model = keras.saving.load_model(os.path.join(args.run_dir, "model.keras"))
    paths = last_checkpoints(os.path.join(args.run_dir, "checkpoints"), args.last)
    average_checkpoints(model, paths)
    output = args.output or os.path.join(args.run_dir, "averaged.weights.h5")
    with atomic_path(output) as temporary:
        model.save_weights(temporary)
    print(f"averaged {len(paths)} checkpoints into {output}")


def cmd_plot(args):
    from keras_transformer import plots

    output = args.output or os.path.join(args.run_dir, f"{args.what}.png")
    if args.what == "loss":
        print(plots.plot_loss_curves(os.path.join(args.run_dir, "log.csv"), output))
    elif args.what == "lr":
        from keras_transformer.runs import read_config
        from keras_transformer.training import NoamSchedule

        model_config, settings, _ = read_config(args.run_dir)
        schedule = NoamSchedule(
            model_config.d_model, settings.warmup_steps, settings.learning_rate_scale
        )
        print(plots.plot_learning_rate(schedule, args.steps or 4 * settings.warmup_steps, output))
    else:
        if not args.sentence:
            raise UsageError("plot attention needs --sentence TEXT")
        translator = _translator(args)
        details = translator.translate_with_details([args.sentence])
        print(
            plots.plot_attention(
                details.attention[0],
                details.source_tokens[0],
                details.target_tokens[0],
                output,
                title=f"{args.sentence} -> {details.translations[0]}",
            )
        )


def cmd_demo(args):
    from keras_transformer.demo import run_demo

    run_demo(args.run_dir, args.export_dir, minutes=args.minutes, size=args.size)


def _with_run_dir(sub):
    sub.add_argument("--run-dir", required=True, help="the run directory")
    return sub


def _with_decoding(sub):
    _with_run_dir(sub)
    sub.add_argument("--beam-size", type=positive_int, default=4)
    sub.add_argument("--alpha", type=float, default=0.6, help="length penalty α")
    sub.add_argument("--weights", choices=("averaged", "last"), default="averaged")
    return sub


# Flag names users already know for TrainingSettings fields (`--jit` and `--no-jit`
# besides the generated `--jit-compile` and `--no-jit-compile`).
TRAINING_FLAG_ALIASES = {"jit_compile": "--jit"}


def _add_train(commands):
    from keras_transformer.runs import TrainingSettings

    train = _with_run_dir(commands.add_parser("train", help="train or resume a run"))
    train.add_argument("--preset", default="tiny", help="tiny, base or big")
    train.add_argument("--config", help="JSON file with 'model' and 'training' sections")
    train.add_argument(
        "--set",
        nargs="*",
        metavar="KEY=VALUE",
        help="model overrides, e.g. d_model=128 norm_first=true",
    )
    train.add_argument(
        "--data",
        default="embedded",
        choices=("embedded", "gettext", "tsv", "aligned", "prepared", "tfds"),
    )
    for split in ("train", "dev", "test"):
        train.add_argument(
            f"--{split}",
            nargs="+",
            metavar="PATH",
            help=f"{split} pairs: a TSV file, or source and target files "
            "(prepared: a directory `keras-transformer prepare` wrote)",
        )
    train.add_argument(
        "--skip-bad-lines",
        action="store_true",
        help="tsv, aligned: skip malformed lines (with a warning) instead of stopping at the first",
    )
    train.add_argument("--tfds-name", help="e.g. ted_hrlr_translate/pt_to_en")
    train.add_argument("--data-dir", help="TFDS data directory")
    train.add_argument(
        "--target-lang",
        default="de",
        help="embedded: num2words language; gettext: catalog language (fr, es)",
    )
    train.add_argument(
        "--locale-dir",
        default=DEFAULT_LOCALE_DIR,
        help="gettext: the folder of <lang>/LC_MESSAGES/*.mo catalogs",
    )
    train.add_argument("--train-size", type=positive_int, default=20000)
    add_settings_flags(train, TrainingSettings, TRAINING_FLAG_ALIASES)
    train.set_defaults(handler=cmd_train)


def _add_prepare(commands):
    prepare = commands.add_parser(
        "prepare", help="tokenize a large corpus once into shards (train --data prepared)"
    )
    prepare.add_argument(
        "--input",
        nargs="+",
        required=True,
        metavar="PATH",
        help="a TSV file, or source and target files aligned by line",
    )
    prepare.add_argument("--output", required=True, help="the directory to write")
    prepare.add_argument(
        "--tokenizers",
        metavar="DIR",
        help="use the tokenizers of this run or prepared directory "
        "(its tokenizers/source and tokenizers/target) instead of "
        "learning them",
    )
    prepare.add_argument(
        "--tokenizer", default="sentencepiece", choices=("wordpiece", "sentencepiece")
    )
    prepare.add_argument("--vocab-size", type=positive_int, default=8000)
    prepare.add_argument(
        "--separate-vocabularies",
        action="store_true",
        help="one vocabulary per language (default: one shared)",
    )
    prepare.add_argument(
        "--sample-size",
        type=positive_int,
        default=100_000,
        help="pairs the tokenizers are learned from (a seeded sample)",
    )
    prepare.add_argument("--max-length", type=positive_int, default=128)
    prepare.add_argument(
        "--truncate", action="store_true", help="cut too long pairs instead of dropping them"
    )
    prepare.add_argument("--pairs-per-shard", type=positive_int, default=100_000)
    prepare.add_argument(
        "--workers",
        type=positive_int,
        default=os.cpu_count() or 1,
        help="processes that tokenize (default: one per core)",
    )
    prepare.add_argument("--seed", type=non_negative_int, default=0)
    prepare.add_argument("--skip-bad-lines", action="store_true")
    prepare.set_defaults(handler=cmd_prepare)


def _add_evaluate(commands):
    evaluate = _with_decoding(commands.add_parser("evaluate", help="BLEU, chrF, exact match"))
    evaluate.add_argument("--split", default="test", choices=("dev", "test"))
    evaluate.add_argument("--limit", type=positive_int, help="evaluate the first N pairs only")
    evaluate.add_argument(
        "--samples", type=non_negative_int, default=5, help="sample translations to print"
    )
    evaluate.add_argument(
        "--batch-size",
        type=positive_int,
        default=DECODE_BATCH_SIZE,
        help="sentences decoded together, sorted by length",
    )
    evaluate.add_argument(
        "--bleu-tokenize",
        default="13a",
        help="sacreBLEU tokenizer: 13a, char (for one-word sentences), ...",
    )
    evaluate.set_defaults(handler=cmd_evaluate)


def _add_translate(commands):
    translate = _with_decoding(
        commands.add_parser("translate", help="translate arguments, a file, or stdin line by line")
    )
    translate.add_argument("text", nargs="*")
    translate.add_argument("--file")
    translate.add_argument(
        "--batch-size",
        type=positive_int,
        default=DECODE_BATCH_SIZE,
        help="--file: sentences decoded together, sorted by length",
    )
    translate.set_defaults(handler=cmd_translate)


def _add_export(commands):
    export = _with_decoding(commands.add_parser("export", help="SavedModel, TFLite or ONNX"))
    export.add_argument("--format", required=True, choices=("saved_model", "tflite", "onnx"))
    export.add_argument("--output", default="saved_models")
    export.add_argument("--name", help="export name (default: the run directory's name)")
    export.add_argument("--version", type=positive_int, default=1, help="SavedModel version folder")
    export.add_argument("--overwrite", action="store_true")
    export.add_argument(
        "--quantization",
        choices=("float16", "int8"),
        help="TFLite: float16 or int8; ONNX: int8 (dynamic-range int8 weights)",
    )
    export.set_defaults(handler=cmd_export)


def _add_average(commands):
    average = _with_run_dir(
        commands.add_parser("average-checkpoints", help="average the last checkpoints of a run")
    )
    average.add_argument("--last", type=positive_int, default=5)
    average.add_argument("--output")
    average.set_defaults(handler=cmd_average)


def _add_plot(commands):
    plot = _with_decoding(commands.add_parser("plot", help="attention map, schedule, losses"))
    plot.add_argument("what", choices=("attention", "lr", "loss"))
    plot.add_argument("--sentence")
    plot.add_argument("--steps", type=positive_int, help="lr: steps to plot")
    plot.add_argument("--output", help="PNG path (default: in the run directory)")
    plot.set_defaults(handler=cmd_plot)


def _add_demo(commands):
    demo = commands.add_parser("demo", help="train, evaluate and export on the embedded corpus")
    demo.add_argument("--run-dir", default="runs/demo")
    demo.add_argument("--export-dir", default="saved_models")
    demo.add_argument("--minutes", type=float, default=8.0, help="training time budget")
    demo.add_argument(
        "--size",
        default="full",
        choices=("full", "small"),
        help="full (make demo) or small (a smaller model and corpus, about 30 s of training)",
    )
    demo.set_defaults(handler=cmd_demo)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-transformer",
        description="Train, evaluate, translate with and export the paper's Transformer.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for add in (
        _add_train,
        _add_prepare,
        _add_evaluate,
        _add_translate,
        _add_export,
        _add_average,
        _add_plot,
        _add_demo,
    ):
        add(commands)
    return parser


XLA_CACHE_DIR = "xla_cache"


def _cache_compiled_decoders(run_dir):
    """Keeps the XLA programs of the decoding loops in `run_dir`/xla_cache, so that a
    later evaluate or translate of the run loads them instead of compiling again
    (TensorFlow's persistent XLA cache, whose flags are read at the first compilation,
    so after the import but before any decoding). The programs hold no weights: they
    stay valid when the checkpoint changes. A program is found again because it is
    traced under names of its own, the same in every process (`compiled._trace`)."""
    flag = "--tf_xla_persistent_cache_directory"
    flags = os.environ.get("TF_XLA_FLAGS", "")
    if flag not in flags:
        cache = os.path.join(os.path.abspath(run_dir), XLA_CACHE_DIR)
        os.environ["TF_XLA_FLAGS"] = f"{flags} {flag}={cache}".strip()


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in ("evaluate", "translate") and os.path.isdir(args.run_dir):
        _cache_compiled_decoders(args.run_dir)
    try:
        args.handler(args)
    except UsageError as error:
        parser.error(str(error))
    except USER_ERRORS as error:
        message = str(error)
        for argument, flag in FLAGS_FOR_ARGUMENTS.items():
            message = message.replace(argument, flag)
        print(f"keras-transformer {args.command}: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
