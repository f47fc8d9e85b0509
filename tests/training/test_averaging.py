import numpy as np
import pytest

import keras_transformer as kt
from keras_transformer.training.averaging import average_checkpoints, last_checkpoints


def small_model(seed):
    import keras

    keras.utils.set_random_seed(seed)
    model = kt.Transformer(
        num_layers=1,
        d_model=8,
        num_heads=2,
        d_ff=16,
        src_vocab_size=12,
        tgt_vocab_size=12,
        max_length=16,
    )
    model.build()
    return model


def test_average_is_the_elementwise_mean(tmp_path):
    paths = []
    weights = []
    for seed in range(3):
        model = small_model(seed)
        path = tmp_path / f"epoch_{seed:03d}.weights.h5"
        model.save_weights(path)
        paths.append(str(path))
        weights.append(model.get_weights())
    averaged = average_checkpoints(small_model(9), paths)
    for got, *those in zip(averaged.get_weights(), *weights):
        np.testing.assert_allclose(got, np.mean(those, axis=0), rtol=1e-6, atol=1e-7)


def test_averaging_identical_checkpoints_changes_nothing(tmp_path):
    model = small_model(0)
    path = str(tmp_path / "epoch_001.weights.h5")
    model.save_weights(path)
    before = model.get_weights()
    for a, b in zip(average_checkpoints(model, [path] * 3).get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_last_checkpoints_in_epoch_order(tmp_path):
    for epoch in (3, 1, 12, 2):
        (tmp_path / f"epoch_{epoch:03d}.weights.h5").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    names = [p.rsplit("/", 1)[1] for p in last_checkpoints(str(tmp_path), 2)]
    assert names == ["epoch_003.weights.h5", "epoch_012.weights.h5"]


def test_bad_checkpoints(tmp_path):
    with pytest.raises(ValueError, match="at least one"):
        average_checkpoints(small_model(0), [])
    with pytest.raises(FileNotFoundError, match="missing.weights.h5"):
        average_checkpoints(small_model(0), [str(tmp_path / "missing.weights.h5")])
    corrupt = tmp_path / "corrupt.weights.h5"
    corrupt.write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="cannot load checkpoint"):
        average_checkpoints(small_model(0), [str(corrupt)])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no \\*.weights.h5"):
        last_checkpoints(str(empty))


def _a_good_and_a_bad_checkpoint(tmp_path):
    good = tmp_path / "epoch_001.weights.h5"
    small_model(1).save_weights(good)
    bad = tmp_path / "epoch_002.weights.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 40)  # an HDF5 signature, then nothing
    return str(good), str(bad)


@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
def test_a_bad_checkpoint_leaves_the_models_weights_as_they_were(tmp_path):
    # Catches: averaging that loads checkpoint after checkpoint into the caller's model
    # and, refused at a bad one, leaves it holding the weights of the good one before.
    import tensorflow as tf

    from keras_transformer.training.averaging import best_average

    good, bad = _a_good_and_a_bad_checkpoint(tmp_path)
    model = small_model(0)
    model.compile(loss=kt.training.LabelSmoothedCrossEntropy(0.1))
    ids = np.array([[5, 6, 7, 3]] * 4, np.int32)
    before = model.get_weights()
    with pytest.raises(kt.errors.InputError, match="cannot load checkpoint .*epoch_002"):
        average_checkpoints(model, [good, bad])
    # best_average reads the newest first: the good one is loaded and scored, then the bad.
    with pytest.raises(kt.errors.InputError, match="cannot load checkpoint .*epoch_002"):
        best_average(model, [bad, good], tf.data.Dataset.from_tensors(((ids, ids), ids)))
    for after, was in zip(model.get_weights(), before):
        np.testing.assert_array_equal(after, was)


@pytest.mark.parametrize("count", [0, -1, 2.0, True])
def test_last_checkpoints_refuses_a_count_below_one(tmp_path, count):
    # Catches: names[-count:], which for 0 takes every checkpoint and for -1 all but the
    # first, averaging another set than the one asked for without a word.
    for epoch in (1, 2, 3):
        (tmp_path / f"epoch_{epoch:03d}.weights.h5").write_bytes(b"")
    with pytest.raises(kt.errors.InputError, match="count must be an int >= 1"):
        last_checkpoints(str(tmp_path), count)
