"""read_tfds: sentence pairs from a TensorFlow Datasets translation dataset.

`tensorflow_datasets` is an optional dependency (`pip install
keras_transformer[tfds]`), imported only when `read_tfds` is called.

Example:

>>> pairs = read_tfds("ted_hrlr_translate/pt_to_en", split="train")  # doctest: +SKIP
>>> pairs[0]                                                         # doctest: +SKIP
('e quando melhoramos a procura , ...', 'and when you improve searchability , ...')
"""

from keras_transformer.errors import InputError


def read_tfds(name, split="train", data_dir=None, download=True):
    """Returns the (source, target) str pairs of a TFDS translation dataset.

    Args:
        name: a TFDS name with config, e.g. "ted_hrlr_translate/pt_to_en" or
            "wmt14_translate/de-en". The dataset's supervised keys give the
            (source, target) order.
        split: a TFDS split ("train", "validation", "test", "train[:1%]", ...).
        data_dir: where TFDS keeps its data; None for its default.
        download: let TFDS download and prepare the data if missing.

    Raises:
        ImportError: tensorflow_datasets is not installed.
        ValueError: the dataset has no (source, target) supervised keys.
    """
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise ImportError(
            "read_tfds needs tensorflow-datasets; install it with "
            "`pip install keras_transformer[tfds]` (or `pip install "
            "tensorflow-datasets`)"
        ) from error

    builder = tfds.builder(name, data_dir=data_dir)
    if builder.info.supervised_keys is None:
        raise InputError(
            f"TFDS dataset {name!r} has no supervised keys, so which feature is "
            f"the source and which the target is unknown; expected a translation "
            f"dataset such as 'ted_hrlr_translate/pt_to_en'"
        )
    if download:
        builder.download_and_prepare()
    dataset = builder.as_dataset(split=split, as_supervised=True)
    return [
        (source.decode("utf-8"), target.decode("utf-8"))
        for source, target in tfds.as_numpy(dataset)
    ]
