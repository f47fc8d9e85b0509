"""The numbers that every part of the package agrees on. A leaf: imports nothing of ours.

Reserved token ids (the model's input format; every tokenizer starts its vocabulary
with these four tokens, at these ids — see `text/vocabulary.py`):

| id | token     | meaning                                   |
|----|-----------|-------------------------------------------|
| 0  | `[PAD]`   | padding; masked out by the model          |
| 1  | `[UNK]`   | a word the vocabulary cannot spell        |
| 2  | `[START]` | first decoder input (shifted right)       |
| 3  | `[END]`   | end of sentence; decoding stops here      |

NEG_INF stands for −∞ wherever a logit or log-probability must be ruled out: masked
attention logits (set in float32, where softmax always runs, so it is safe whatever the
layer's compute dtype), forbidden tokens and empty beam slots. It is finite so that
sums, products with one-hot masks and divisions never produce NaN.
"""

PAD_ID, UNK_ID, START_ID, END_ID = 0, 1, 2, 3

NEG_INF = -1e9

# The position-wise feed-forward network's activations (§3.3 uses ReLU).
ACTIVATIONS = ("relu", "gelu")
