import numpy as np
import tensorflow as tf


def test_decode_step_equals_decode_on_the_prefix(tiny_model, sources):
    src = sources[:3]
    tgt = np.array([[2, 5, 6, 7, 3], [2, 9, 9, 4, 12], [2, 17, 3, 0, 0]], np.int32)
    memory, memory_mask = tiny_model.encode(src)
    full = tiny_model.decode(tgt, memory, memory_mask).numpy()
    cache = tiny_model.init_cache(memory, 8)
    for step in range(tgt.shape[1]):
        logits, cache = tiny_model.decode_step(
            tgt[:, step : step + 1], tf.constant(step), cache, memory_mask
        )
        real = tgt[:, step] != 0
        np.testing.assert_allclose(logits.numpy()[real, 0], full[real, step], atol=1e-5)


def test_hypotheses_that_change_places_decode_as_their_own_prefixes(tiny_model, sources):
    """k hypotheses per sentence share one cache; after each step they are reordered as
    beam search does (new hypothesis j extends old hypothesis origins[b, j], by gathering
    the ancestry). Each hypothesis' logits must equal the teacher-forced decoder run on
    its own history."""
    rng = np.random.default_rng(0)
    src, k, steps = sources[:2], 3, 6
    memory, memory_mask = tiny_model.encode(src)
    cache = tiny_model.init_cache(memory, 8, beam_size=k)
    history = np.full((2, k, 1), 2, np.int32)  # every hypothesis starts with [START]
    for step in range(steps):
        logits, cache = tiny_model.decode_step(
            tf.constant(history[:, :, -1]), tf.constant(step), cache, memory_mask
        )
        for b in range(2):
            full = tiny_model.decode(
                history[b],
                tf.repeat(memory[b : b + 1], k, axis=0),
                tf.repeat(memory_mask[b : b + 1], k, axis=0),
            ).numpy()
            np.testing.assert_allclose(logits.numpy()[b], full[:, step], atol=1e-5)
        origins = rng.integers(0, k, size=(2, k)).astype(np.int32)
        history = np.take_along_axis(history, origins[:, :, None], axis=1)
        cache = dict(cache, ancestry=tf.gather(cache["ancestry"], origins, batch_dims=1))
        history = np.concatenate([history, rng.integers(4, 20, size=(2, k, 1))], axis=2)
