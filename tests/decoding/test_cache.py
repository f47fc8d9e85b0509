import numpy as np
import tensorflow as tf

from keras_transformer.decoding.cache import reorder_beams, tile_beams


def test_decode_step_equals_decode_on_the_prefix(tiny_model, sources):
    src = sources[:3]
    tgt = np.array([[2, 5, 6, 7, 3], [2, 9, 9, 4, 12], [2, 17, 3, 0, 0]], np.int32)
    memory, memory_mask = tiny_model.encode(src)
    full = tiny_model.decode(tgt, memory, memory_mask).numpy()
    cache = tiny_model.init_cache(memory, 8)
    for step in range(tgt.shape[1]):
        logits, cache = tiny_model.decode_step(
            tgt[:, step:step + 1], tf.constant(step), cache, memory_mask)
        real = tgt[:, step] != 0
        np.testing.assert_allclose(logits.numpy()[real], full[real, step], atol=1e-5)


def test_tile_beams_repeats_each_sentence_beam_major():
    cache = {"self_keys": tf.reshape(tf.range(6.0), (1, 2, 3)),
             "cross_keys": tf.reshape(tf.range(6.0), (1, 2, 3))}
    tiled = tile_beams(cache, 2)
    assert tiled["self_keys"].shape == (1, 4, 3)
    np.testing.assert_array_equal(tiled["self_keys"][0, :, 0], [0, 0, 3, 3])


def test_reorder_beams_follows_origins_and_leaves_the_source_entries():
    rows = tf.reshape(tf.range(4.0), (1, 4, 1))  # sentence b, beam j at row 2b + j
    cache = {"self_keys": rows, "self_values": rows, "cross_keys": rows}
    reordered = reorder_beams(cache, tf.constant([[1, 1], [1, 0]]))
    np.testing.assert_array_equal(reordered["self_keys"][0, :, 0], [1, 1, 3, 2])
    np.testing.assert_array_equal(reordered["self_values"][0, :, 0], [1, 1, 3, 2])
    np.testing.assert_array_equal(reordered["cross_keys"][0, :, 0], [0, 1, 2, 3])
    in_place = reorder_beams(cache, tf.constant([[0, 1], [0, 1]]))
    np.testing.assert_array_equal(in_place["self_keys"][0, :, 0], [0, 1, 2, 3])
