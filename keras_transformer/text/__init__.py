"""Tokenizers: strings <-> int32 token ids, as tf.Modules (tensorflow-text).

`[PAD]`=0, `[UNK]`=1, `[START]`=2, `[END]`=3 in every vocabulary.

May import from keras_transformer: constants, errors, files.
Third-party: tensorflow, tensorflow-text, sentencepiece. Not layers, data or training:
a tokenizer knows strings and ids, nothing of the model.
"""

from keras_transformer.constants import END_ID, PAD_ID, START_ID, UNK_ID
from keras_transformer.text.learning import learn_tokenizers
from keras_transformer.text.loading import load_tokenizer
from keras_transformer.text.sentencepiece_tokenizer import SentencePieceTokenizer
from keras_transformer.text.tokenizer import Tokenizer
from keras_transformer.text.vocabulary import RESERVED_TOKENS, vocabulary_fingerprint
from keras_transformer.text.wordpiece import WordPieceTokenizer
from keras_transformer.text.wordpiece_learner import learn_wordpiece_vocabulary
