"""Corpora named by a JSON-able description, the form a run keeps in its config.json
(`keras-transformer train` writes it from its --data flags, `evaluate` reads it back):

    {"source": "embedded", "target_lang": "de", "train_size": 20000, "seed": 0}
    {"source": "tsv", "train": ["train.tsv"], "dev": ["dev.tsv"], "skip_bad_lines": false}
"""

from keras_transformer.data.corpus import Corpus, PreparedCorpus
from keras_transformer.data.gettext_corpus import DEFAULT_LOCALE_DIR, gettext_corpus
from keras_transformer.data.numbers_corpus import numbers_corpus
from keras_transformer.data.readers import read_parallel
from keras_transformer.data.tfds_reader import read_tfds
from keras_transformer.errors import InputError


def load_corpus(data: dict) -> Corpus | PreparedCorpus:
    """The corpus the description `data` names.

    Args:
        data: {"source": "embedded" | "gettext" | "tsv" | "aligned" | "prepared" |
            "tfds", and that source's keys: target_lang, train_size, seed (embedded);
            target_lang, locale_dir, seed (gettext); train, dev, test lists of paths and
            skip_bad_lines (tsv, aligned); train, dev directories (prepared); tfds_name,
            data_dir (tfds)}.
    """
    source = data.get("source", "embedded")
    if source == "embedded":
        return numbers_corpus(
            target_lang=data.get("target_lang", "de"),
            train_size=data.get("train_size", 20000),
            seed=data.get("seed", 0),
        )
    if source in ("tsv", "aligned"):
        splits = {}
        for split in ("train", "dev", "test"):
            paths = data.get(split)
            splits[split] = (
                read_parallel(*paths, skip_bad_lines=data.get("skip_bad_lines", False))
                if paths
                else []
            )
        if not splits["train"]:
            raise InputError(f"--data {source} needs --train files")
        return Corpus(**splits)
    if source == "prepared":
        return PreparedCorpus(train=data["train"][0], dev=(data.get("dev") or [None])[0])
    if source == "gettext":
        return gettext_corpus(
            data["target_lang"],
            locale_dir=data.get("locale_dir", DEFAULT_LOCALE_DIR),
            seed=data.get("seed", 0),
        )
    if source == "tfds":
        name = data.get("tfds_name")
        if not name:
            raise InputError("--data tfds needs --tfds-name, e.g. ted_hrlr_translate/pt_to_en")
        return Corpus(
            train=read_tfds(name, split="train", data_dir=data.get("data_dir")),
            dev=read_tfds(name, split="validation", data_dir=data.get("data_dir")),
            test=read_tfds(name, split="test", data_dir=data.get("data_dir")),
        )
    raise InputError(
        f"unknown data source {source!r}; expected embedded, gettext, tsv, aligned, prepared "
        "or tfds"
    )
