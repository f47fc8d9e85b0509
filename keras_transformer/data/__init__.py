"""Parallel corpora and the tf.data pipeline that batches them by tokens.

May import from keras_transformer: constants, errors, files, text.
Third-party: tensorflow, num2words, tensorflow-datasets (when read). Not layers, model
or training: batches are ids, whatever model they feed.
"""

from keras_transformer.data.batch_settings import BatchSettings
from keras_transformer.data.bucketing import token_budget_buckets
from keras_transformer.data.corpus import Corpus, PreparedCorpus
from keras_transformer.data.gettext_corpus import (
    DEFAULT_LOCALE_DIR,
    gettext_corpus,
    read_gettext_pairs,
)
from keras_transformer.data.numbers_corpus import numbers_corpus
from keras_transformer.data.pipeline import DatasetStats, make_dataset
from keras_transformer.data.prepare import prepare
from keras_transformer.data.readers import iter_parallel, read_parallel
from keras_transformer.data.shards import read_manifest, shard_dataset
from keras_transformer.data.sources import load_corpus
from keras_transformer.data.synthetic_corpus import write_synthetic_corpus
from keras_transformer.data.tfds_reader import read_tfds
