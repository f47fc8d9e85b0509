"""Translator: strings in, strings out.

    text ─tokenize─▶ source ids ─encode once, cached beam (or greedy) loop─▶ ids
         ─detokenize─▶ text

A `tf.Module` holding the model, both tokenizers and the decoding settings: everything
a server needs (`kt.export.export_saved_model` writes it for TF Serving). Three ways in:

* `translator(["ein satz", ...])` in Python: a list of str (a str for a str).
* `translator.translate(text)`: a tf.function, text tf.string (batch,) ->
  {"translation": tf.string (batch,), "score": float32 (batch,),
   "ids": int32 (batch, t)}; the SavedModel signature. `translator(tensor)` calls it.
* `translator.translate_ids(src_ids)`: int32 (batch, src_len) -> {"ids", "score"}, for
  runtimes that tokenize outside the graph (TFLite, ONNX).

Sources are fed to the encoder as the tokenizer gives them, without [START]/[END]; the
decoder starts from [START]. Bad input: an empty string translates to an empty string,
an empty batch to an empty result, characters the vocabulary cannot spell to [UNK]
(the tokenizer's rule). A source longer than the model's max_length is truncated with a
warning, or refused with a ValueError when `strict=True` (inside a graph, the warning is
not possible: `translate` truncates silently, or fails an assertion when strict).
"""

import dataclasses
import functools
import warnings

import numpy as np
import tensorflow as tf

from keras_transformer.constants import PAD_ID
from keras_transformer.decoding import compiled, continuous, stragglers
from keras_transformer.decoding.beam import beam_loop
from keras_transformer.decoding.buffers import trim_padding
from keras_transformer.decoding.greedy import greedy_loop
from keras_transformer.decoding.rules import DecodingSettings
from keras_transformer.errors import InputError
from keras_transformer.text.source_ids import padded_ids

# Small batches: on CPU, the key/value buffers of larger ones no longer fit the caches,
# and every batch waits for its longest sentence (benchmarks/real_data.py shows it).
DECODE_BATCH_SIZE = 16


def best_hypothesis(model, src_ids, settings, max_steps=None):
    """The best translation of each source under `DecodingSettings`: greedy search for
    beam_size 1, else beam search's first hypothesis. Returns ids (batch, W) and scores
    (batch,), and done (batch,) with `max_steps`."""
    if settings.beam_size == 1:
        return greedy_loop(model, src_ids, settings, max_steps=max_steps)
    ids, scores, *done = beam_loop(model, src_ids, settings, max_steps=max_steps)
    return (ids[:, 0], scores[:, 0], *done)


@dataclasses.dataclass
class TranslationDetails:
    """What `Translator.translate_with_details` returns, one list entry per sentence.

    Attributes:
        sources, translations: the input and output text.
        scores: the decoder's score of each translation (beam search: length-penalised
            log-probability; greedy: log-probability).
        source_ids: (src_len,) int32 ids fed to the encoder (after any truncation).
        ids: (t,) int32 output ids, without [START], with [END] when it was emitted.
        source_tokens, target_tokens: the tokens of source_ids and ids, as str.
        attention: (h, t, src_len) float32 cross-attention weights of the last decoder
            layer for the returned translation: row i is where the decoder looked when
            it emitted ids[i]. For heat maps (keras_transformer.plots).
    """

    sources: list
    translations: list
    scores: list
    source_ids: list
    ids: list
    source_tokens: list
    target_tokens: list
    attention: list


class Translator(tf.Module):
    """Translates sentences with a trained `Transformer` and its tokenizers.

    Args:
        model: a trained `Transformer`.
        source_tokenizer, target_tokenizer: tokenizers of `keras_transformer.text`
            (anything with tokenize -> RaggedTensor, detokenize, start_id, end_id,
            vocabulary).
        beam_size: beams per sentence (the paper: 4); 1 runs greedy search.
        alpha: length penalty α of beam search (the paper: 0.6).
        max_length: None for source length + 50 tokens per sentence (capped at the
            model's max_length), or an int limit.
        min_length: [END] is forbidden before this many output tokens.
        strict: refuse sources longer than the model's max_length (ValueError)
            instead of truncating them with a warning.
        jit_compile: compile the decoding loop with XLA.
        name: name of the tf.Module.

    Attributes:
        settings: the `kt.decoding.DecodingSettings` built from beam_size, alpha,
            max_length, min_length and the target tokenizer's reserved ids: how this
            Translator and its exports decode.

    Example:
    >>> tok = kt.text.WordPieceTokenizer.train(["ein kleiner test", "a small test"],
    ...                                        vocab_size=40)
    >>> model = kt.Transformer.from_preset("tiny", src_vocab_size=tok.vocab_size,
    ...                                    tgt_vocab_size=tok.vocab_size)
    >>> model.build()                          # untrained here; trained with fit() in practice
    >>> translator = Translator(model, source_tokenizer=tok, target_tokenizer=tok)
    >>> translator(["ein kleiner test"])      # ['a small test'] once trained
    ['...']

    Export it with `kt.export.export_saved_model(translator, "saved_models/de_en")`.
    """

    def __init__(
        self,
        model,
        source_tokenizer,
        target_tokenizer,
        beam_size=4,
        alpha=0.6,
        max_length=None,
        min_length=0,
        strict=False,
        jit_compile=True,
        name=None,
    ):
        super().__init__(name=name)
        self.settings = DecodingSettings(
            beam_size=beam_size,
            alpha=alpha,
            max_length=max_length,
            min_length=min_length,
            start_id=target_tokenizer.start_id,
            end_id=target_tokenizer.end_id,
        ).check(model)
        if target_tokenizer.vocab_size != model.config.tgt_vocab_size:
            raise InputError(
                f"the target tokenizer has {target_tokenizer.vocab_size} tokens but the "
                f"model's target vocabulary has {model.config.tgt_vocab_size}; pass the "
                f"tokenizer the model was trained with"
            )
        if source_tokenizer.vocab_size != model.config.src_vocab_size:
            raise InputError(
                f"the source tokenizer has {source_tokenizer.vocab_size} tokens but the "
                f"model's source vocabulary has {model.config.src_vocab_size}; pass the "
                f"tokenizer the model was trained with"
            )
        if not model.built:  # its variables must exist before any graph decodes with it
            model.build()
        self.model = model
        self.source_tokenizer = source_tokenizer
        self.target_tokenizer = target_tokenizer
        self.strict = strict
        self.jit_compile = jit_compile
        self.max_source_length = model.config.max_length
        # For graphs (SavedModel signatures): one function for every source width.
        self._compiled_decode = tf.function(
            self._decode,
            jit_compile=jit_compile,
            input_signature=[tf.TensorSpec([None, None], tf.int32)],
        )

    @property
    def beam_size(self):
        """`settings.beam_size`: 1 decodes greedily."""
        return self.settings.beam_size

    @property
    def alpha(self):
        """`settings.alpha`, the length penalty α of beam search."""
        return self.settings.alpha

    @property
    def max_length(self):
        """`settings.max_length`: None for source length + 50, or an int limit."""
        return self.settings.max_length

    @property
    def min_length(self):
        """`settings.min_length`: [END] is forbidden before this many output tokens."""
        return self.settings.min_length

    def _decode(self, src_ids):
        """src_ids (batch, src_len) -> ids (batch, W), scores (batch,)."""
        return best_hypothesis(self.model, src_ids, self.settings)

    def _tokenize(self, text):
        """tf.string (batch,) -> 0-padded int32 ids (batch, src_len), in graphs."""
        tokens = self.source_tokenizer.tokenize(text)
        lengths = tf.cast(tokens.row_lengths(), tf.int32)
        if self.strict:
            tf.debugging.assert_less_equal(
                lengths,
                self.max_source_length,
                message=f"a source is longer than the model's max_length="
                f"{self.max_source_length} tokens (strict=True)",
            )
        return padded_ids(tokens, self.max_source_length)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)])
    def translate_ids(self, src_ids):
        """int32 source ids (batch, src_len), 0-padded, at most the model's max_length
        columns -> {"ids": int32 (batch, t) without [START], ending with [END] then
        padding; "score": float32 (batch,)}."""
        vocab_size = self.model.config.src_vocab_size
        # In the graph, so that TF Serving refuses what a compiled gather would clamp,
        # naming the first bad id and its position as `check_id_range` does, and a long
        # row before a kernel of the decoder fails on it with its own message.
        bad = tf.where((src_ids < 0) | (src_ids >= vocab_size))[:1]
        length = tf.shape(src_ids)[1]
        checks = [
            tf.debugging.Assert(
                tf.size(bad) == 0,
                [
                    f"src ids must be in [0, {vocab_size}) (the src vocabulary, 0 = padding); got",
                    tf.gather_nd(src_ids, bad),
                    "at position",
                    bad,
                ],
            ),
            tf.debugging.Assert(
                length <= self.max_source_length,
                [
                    "src ids have length",
                    length,
                    f"longer than the model's max_length="
                    f"{self.max_source_length}; truncate the input",
                ],
            ),
        ]
        with tf.control_dependencies(checks):
            src_ids = tf.identity(src_ids)
        ids, scores = self._compiled_decode(src_ids)
        return {"ids": trim_padding(ids), "score": scores}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def translate(self, text):
        """tf.string sentences (batch,) -> {"translation": tf.string (batch,),
        "score": float32 (batch,), "ids": int32 (batch, t)}."""
        src_ids = self._tokenize(text)
        ids, scores = self._compiled_decode(src_ids)
        ids = trim_padding(ids)
        return {"translation": self.target_tokenizer.detokenize(ids), "score": scores, "ids": ids}

    def __call__(self, sentences):
        """A str or a list of str -> the same kind of translations; a tf.string tensor
        (batch,) -> a tf.string tensor (batch,), in graphs too. A list longer than
        `DECODE_BATCH_SIZE` is decoded in batches of similar lengths
        (`translate_many`)."""
        if isinstance(sentences, (tf.Tensor, tf.Variable)):
            return self.translate(sentences)["translation"]
        single = isinstance(sentences, str)
        sentences = _check_sentences([sentences] if single else sentences)
        if len(sentences) > DECODE_BATCH_SIZE:
            return self.translate_many(sentences)
        translations = self._translate_batch(sentences)
        return translations[0] if single else translations

    def translate_many(self, sentences, batch_size=DECODE_BATCH_SIZE, progress=False):
        """Translates a list of any size and mix of lengths. Beam search decodes
        `batch_size` sentences at a time with continuous batching (a sentence that is
        done hands its slot to the next: `decoding.continuous`); greedy search sorts by
        length into batches of `batch_size`, with the rows that would hold up their
        batch decoded again afterwards (`decoding.stragglers`). Either gives the output
        of decoding each sentence alone, in less time. Returns the translations in the
        input's order; `progress` shows a tqdm bar."""
        from tqdm.auto import tqdm

        sentences = _check_sentences(sentences)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size must be a positive int; got {batch_size!r}")
        if not sentences:
            return []
        src_ids = self._source_ids(sentences).numpy()
        sources = [row[:n] for row, n in zip(src_ids, (src_ids != PAD_ID).sum(axis=1))]
        with tqdm(
            total=len(sentences), unit="sentence", desc="translating", disable=not progress
        ) as bar:
            if self.settings.beam_size > 1:
                ids, _ = continuous.decode_queue(
                    self.model, sources, self.settings, batch_size, self.jit_compile, bar.update
                )
            else:
                ids = self._greedy_in_two_passes(sources, batch_size, bar.update)
        width = max(len(row) for row in ids)
        padded = np.zeros((len(ids), max(width, 1)), np.int32)
        for i, row in enumerate(ids):
            padded[i, : len(row)] = row
        return _to_str(self.target_tokenizer.detokenize(padded))

    def _greedy_in_two_passes(self, sources, batch_size, on_final):
        """Greedy ids of `sources` (1-D id arrays) by `stragglers.decode_in_two_passes`,
        the programs compiled ahead."""
        ahead = compiled.CompileAhead(
            best_hypothesis,
            self.model,
            stragglers.first_pass_shapes(sources, batch_size),
            (self.settings,),
            self.jit_compile,
            capped=True,
            fill_up_to=batch_size,
        )
        with ahead:
            ids, _ = stragglers.decode_in_two_passes(
                # Short batches (the last, the stragglers) may fill up to batch_size rows
                # to reuse the full batches' programs instead of compiling their own.
                functools.partial(self._decode_eagerly, fill_up_to=batch_size),
                sources,
                batch_size,
                self.model.config.max_length,
                on_final,
            )
        return ids

    def _translate_batch(self, sentences):
        """A list of str, decoded as one batch -> a list of str."""
        if not sentences:
            return []
        _, ids, _ = self._translate_eagerly(sentences)
        return _to_str(self.target_tokenizer.detokenize(ids))

    def _translate_eagerly(self, sentences):
        """Tokenizes, then decodes. Returns source ids (batch, src_len), ids (batch, t)
        and scores (batch,)."""
        src_ids = self._source_ids(sentences)
        ids, scores, _ = self._decode_eagerly(src_ids, self.model.config.max_length)
        return src_ids, trim_padding(ids), scores

    def _decode_eagerly(self, src_ids, max_steps, fill_up_to=0):
        """The compiled loop for eager calls: one XLA program per source bucket (its
        buffers sized from the source), shared by every cap `max_steps` (a cap of the
        model's max_length cuts nothing); `fill_up_to` as `compiled.decode_in_buckets`.
        Returns ids, scores and done flags."""
        return compiled.decode_in_buckets(
            best_hypothesis,
            self.model,
            src_ids,
            (self.settings,),
            self.jit_compile,
            max_steps=max_steps,
            fill_up_to=fill_up_to,
        )

    def _source_ids(self, sentences):
        """Tokenizes with a warning (or InputError) for long sources: int32 (batch,
        src_len), 0-padded, at most the model's max_length columns."""
        tokens = self.source_tokenizer.tokenize(tf.constant(sentences, tf.string))
        lengths = tokens.row_lengths().numpy()
        too_long = [i for i, n in enumerate(lengths) if n > self.max_source_length]
        if too_long:
            message = (
                f"{len(too_long)} source(s) (at positions {too_long[:10]}) have more than "
                f"the model's max_length={self.max_source_length} tokens "
                f"(longest: {max(lengths)})"
            )
            if self.strict:
                raise InputError(f"{message}; shorten them or pass strict=False to truncate")
            warnings.warn(f"{message}; they are truncated", stacklevel=4)
        return padded_ids(tokens, self.max_source_length)

    def translate_with_details(self, sentences):
        """Translations with their ids, scores, tokens and last-layer cross-attention.

        Args:
            sentences: a list of str.

        Returns:
            `TranslationDetails`.

        Example:
        >>> tok = kt.text.WordPieceTokenizer.train(["a dog ran", "ein hund lief"], vocab_size=40)
        >>> model = kt.Transformer.from_preset("tiny", src_vocab_size=tok.vocab_size,
        ...                                    tgt_vocab_size=tok.vocab_size)
        >>> model.build()                          # untrained here; trained with fit() in practice
        >>> translator = kt.Translator(model, tok, tok)
        >>> details = translator.translate_with_details(["ein hund"])
        >>> details.attention[0].shape == (4, len(details.ids[0]), len(details.source_ids[0]))
        True
        """
        sentences = _check_sentences(sentences)
        if not sentences:
            return TranslationDetails(*([] for _ in dataclasses.fields(TranslationDetails)))
        src_ids, ids, scores = self._translate_eagerly(sentences)
        attention = self._cross_attention(src_ids, ids).numpy()
        src_ids, ids = src_ids.numpy(), ids.numpy()
        src_lengths = (src_ids != PAD_ID).sum(axis=1)
        out_lengths = (ids != PAD_ID).sum(axis=1)
        return TranslationDetails(
            sources=list(sentences),
            translations=_to_str(self.target_tokenizer.detokenize(ids)),
            scores=[float(s) for s in scores.numpy()],
            source_ids=[row[:n] for row, n in zip(src_ids, src_lengths)],
            ids=[row[:n] for row, n in zip(ids, out_lengths)],
            source_tokens=[
                _tokens(self.source_tokenizer, row[:n]) for row, n in zip(src_ids, src_lengths)
            ],
            target_tokens=[
                _tokens(self.target_tokenizer, row[:n]) for row, n in zip(ids, out_lengths)
            ],
            attention=[a[:, :t, :s] for a, t, s in zip(attention, out_lengths, src_lengths)],
        )

    def _cross_attention(self, src_ids, ids):
        """Last-layer cross-attention (batch, h, t, src_len) of the teacher-forced
        decoder on [START] + ids: the same weights the cached loop saw (cache == no
        cache), for whichever hypothesis beam search chose."""
        memory, memory_mask = self.model.encode(src_ids, training=False)
        start = tf.fill([tf.shape(ids)[0], 1], self.target_tokenizer.start_id)
        tgt_in = tf.concat([start, ids[:, :-1]], axis=1)
        _, weights = self.model.decode(
            tgt_in, memory, memory_mask, training=False, return_attention_scores=True
        )
        return weights[-1]


def translate_in_batches(translate, sentences, batch_size=DECODE_BATCH_SIZE, progress=False):
    """Translates a list of any size and mix of lengths with `translate` (a `Translator`
    or any callable list of str -> list of str), in batches of sentences of similar
    length, and returns the translations in the input's order.

    A `Translator` decodes with `Translator.translate_many` (batches sorted by tokens,
    stragglers decoded last). Any other callable gets batches sorted by characters,
    which keeps the padding in each batch small.

    Args:
        translate: the translator.
        sentences: list of str.
        batch_size: sentences per call.
        progress: show a tqdm progress bar (on stderr).
    """
    from tqdm.auto import tqdm

    if isinstance(translate, Translator):
        return translate.translate_many(sentences, batch_size, progress)
    sentences = _check_sentences(sentences)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be a positive int; got {batch_size!r}")
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
    translations = [None] * len(sentences)
    with tqdm(
        total=len(sentences), unit="sentence", desc="translating", disable=not progress
    ) as bar:
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            for i, translation in zip(batch, translate([sentences[i] for i in batch])):
                translations[i] = translation
            bar.update(len(batch))
    return translations


def _check_sentences(sentences):
    """Any iterable of str (a list, a generator, a file's lines) -> a list of str."""
    kind = type(sentences).__name__
    if isinstance(sentences, (str, bytes)):
        raise InputError(f"expected an iterable of str sentences; got one {kind}")
    try:
        sentences = list(sentences)
    except TypeError:
        raise InputError(f"expected an iterable of str sentences; got {kind}") from None
    if not all(isinstance(s, str) for s in sentences):
        raise InputError(
            f"expected an iterable of str sentences; got a {kind} holding "
            f"{sorted({type(s).__name__ for s in sentences})}"
        )
    return sentences


def _to_str(strings):
    return [s.decode("utf-8") for s in strings.numpy()]


def _tokens(tokenizer, ids):
    vocabulary = tokenizer.vocabulary
    return [vocabulary[i] for i in np.asarray(ids)]
