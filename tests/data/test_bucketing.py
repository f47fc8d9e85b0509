import pytest

from keras_transformer.data import token_budget_buckets


@pytest.mark.parametrize(
    "tokens_per_batch, max_length", [(64, 16), (4096, 128), (100, 100), (25000, 256)]
)
def test_every_bucket_fits_the_budget(tokens_per_batch, max_length):
    boundaries, batch_sizes = token_budget_buckets(tokens_per_batch, max_length)
    assert boundaries == sorted(set(boundaries))
    assert boundaries[-1] == max_length + 1
    assert len(batch_sizes) == len(boundaries) + 1
    for upper, batch_size in zip(boundaries, batch_sizes):
        longest = upper - 1
        assert batch_size >= 1
        assert batch_size * longest <= tokens_per_batch
        assert (batch_size + 1) * longest > tokens_per_batch, "budget used fully"


def test_boundaries_grow_by_step():
    boundaries, _ = token_budget_buckets(4096, 200, min_length=8, step=1.5)
    for lower, upper in zip(boundaries[:-2], boundaries[1:-1]):
        assert upper - 1 >= int((lower - 1) * 1.5)


def test_budget_below_max_length():
    with pytest.raises(
        ValueError, match=r"tokens_per_batch \(64\) must be at least max_length \(128\)"
    ):
        token_budget_buckets(64, 128)
