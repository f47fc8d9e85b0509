"""clone_initializer: a fresh copy of a Keras initializer for every weight.

A Keras initializer object called twice with the same seed repeats its values, so two
weights built from one shared object would start equal; every weight gets its own copy.
"""

import keras


def clone_initializer(
    initializer: keras.initializers.Initializer, seed_offset: int = 0
) -> keras.initializers.Initializer:
    """A new initializer of `initializer`'s class and config; a seed, if set, is moved
    by `seed_offset` so that seeded copies drawn for different weights differ."""
    config = initializer.get_config()
    if seed_offset and config.get("seed") is not None:
        config = dict(config, seed=config["seed"] + seed_offset)
    return initializer.__class__.from_config(config)
