"""keras_transformer: the Transformer of "Attention Is All You Need" as Keras 3 layers."""

from keras_transformer import data, layers, text, training
from keras_transformer.config import TransformerConfig
from keras_transformer.model import Transformer

__version__ = "0.1.0"
