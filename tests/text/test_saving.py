import json
import os
import shutil

import pytest
import tensorflow as tf

from keras_transformer.text import (
    SentencePieceTokenizer,
    WordPieceTokenizer,
    load_tokenizer,
    vocabulary_fingerprint,
)

LINES = [
    "Hello there, students!",
    "The geese read 22 pages; it's 5% of 1,000.",
    "one thousand, two hundred and thirty-four",
    "zweiundzwanzig",
]


@pytest.fixture(scope="module", params=["wordpiece", "sentencepiece"])
def saved(request, tmp_path_factory):
    """(tokenizer, directory it was saved to), for both kinds."""
    tokenizer = request.getfixturevalue(request.param)
    directory = str(tmp_path_factory.mktemp(request.param) / "tokenizer")
    assert tokenizer.save(directory) == directory
    return tokenizer, directory


@pytest.fixture(scope="module")
def saved_wordpiece(wordpiece, tmp_path_factory):
    """A directory to copy and break; saving once keeps the tests fast."""
    return wordpiece.save(str(tmp_path_factory.mktemp("saved_wordpiece")))


def test_save_writes_files(saved):
    tokenizer, directory = saved
    metadata = json.load(open(os.path.join(directory, "tokenizer.json")))
    assert metadata["kind"] == tokenizer.kind
    assert metadata["vocab_size"] == tokenizer.vocab_size
    assert metadata["fingerprint"] == tokenizer.fingerprint
    vocabulary = open(os.path.join(directory, "vocab.txt"), encoding="utf-8").read().splitlines()
    assert vocabulary == tokenizer.vocabulary
    assert os.path.isfile(os.path.join(directory, "saved_model", "saved_model.pb"))


def test_load_round_trip_gives_identical_ids(saved):
    tokenizer, directory = saved
    loaded = load_tokenizer(directory, expected_fingerprint=tokenizer.fingerprint)
    assert type(loaded) is type(tokenizer)
    assert loaded.vocabulary == tokenizer.vocabulary
    assert loaded.fingerprint == tokenizer.fingerprint
    assert loaded.tokenize(LINES).to_list() == tokenizer.tokenize(LINES).to_list()
    ids = tokenizer.tokenize(LINES).to_tensor()
    assert loaded.detokenize(ids).numpy().tolist() == tokenizer.detokenize(ids).numpy().tolist()


def test_saved_model_runs_without_python_classes(saved):
    tokenizer, directory = saved
    exported = tf.saved_model.load(os.path.join(directory, "saved_model"))
    outputs = exported.signatures["tokenize"](strings=tf.constant(LINES))
    expected = tokenizer.tokenize(LINES)
    assert outputs["ids"].dtype == tf.int32
    assert outputs["ids"].numpy().tolist() == expected.to_tensor().numpy().tolist()
    assert outputs["lengths"].numpy().tolist() == expected.row_lengths().numpy().tolist()
    text = exported.signatures["detokenize"](ids=outputs["ids"])["text"]
    assert text.numpy().tolist() == tokenizer.detokenize(expected).numpy().tolist()
    assert exported.fingerprint.numpy().decode() == tokenizer.fingerprint


def test_module_holding_tokenizer_survives_saved_model(saved, tmp_path):
    tokenizer, _ = saved

    class Holder(tf.Module):
        def __init__(self, tokenizer):
            super().__init__()
            self.tokenizer = tokenizer

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def round_trip(self, strings):
            ids = self.tokenizer.tokenize(strings).to_tensor()
            return ids, self.tokenizer.detokenize(ids)

    tf.saved_model.save(Holder(tokenizer), str(tmp_path / "holder"))
    loaded = tf.saved_model.load(str(tmp_path / "holder"))
    ids, text = loaded.round_trip(tf.constant(LINES))
    assert ids.numpy().tolist() == tokenizer.tokenize(LINES).to_tensor().numpy().tolist()
    assert [t.decode() for t in text.numpy()] == LINES


def test_fingerprint_tracks_vocabulary(wordpiece, sentencepiece):
    assert wordpiece.fingerprint == vocabulary_fingerprint(wordpiece.vocabulary)
    other = WordPieceTokenizer(wordpiece.vocabulary[:-1])
    assert other.fingerprint != wordpiece.fingerprint
    assert sentencepiece.fingerprint != wordpiece.fingerprint


def test_missing_directory(tmp_path):
    missing = str(tmp_path / "nowhere")
    with pytest.raises(
        FileNotFoundError, match=f"no tokenizer directory at '{missing}'.*tokenizer.save"
    ):
        load_tokenizer(missing)


def test_missing_metadata(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing .*tokenizer.json.*tokenizer.save"):
        load_tokenizer(str(tmp_path))


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "corrupt tokenizer metadata in .*tokenizer.json"),
        ('{"kind": "wordpiece"}', "expected key 'fingerprint' of type str"),
        (
            '{"kind": "bpe", "fingerprint": "x", "options": {}, "files": {}}',
            "kind 'bpe' is not one of",
        ),
    ],
)
def test_corrupt_metadata(saved_wordpiece, tmp_path, content, message):
    directory = str(tmp_path / "tok")
    shutil.copytree(saved_wordpiece, directory)
    with open(os.path.join(directory, "tokenizer.json"), "w") as f:
        f.write(content)
    with pytest.raises(ValueError, match=message):
        load_tokenizer(directory)


def test_vocabulary_from_another_tokenizer(saved_wordpiece, tmp_path):
    directory = str(tmp_path / "tok")
    shutil.copytree(saved_wordpiece, directory)
    other = WordPieceTokenizer.train(["a completely different corpus"], vocab_size=30)
    with open(os.path.join(directory, "vocab.txt"), "w") as f:
        f.write("\n".join(other.vocabulary) + "\n")
    with pytest.raises(
        ValueError, match=f"has fingerprint {other.fingerprint} .*belongs to another vocabulary"
    ):
        load_tokenizer(directory)


def test_expected_fingerprint_mismatch(wordpiece, saved_wordpiece):
    with pytest.raises(
        ValueError, match=f"fingerprint {wordpiece.fingerprint}, expected 0123456789abcdef"
    ):
        load_tokenizer(saved_wordpiece, expected_fingerprint="0123456789abcdef")


def test_sentencepiece_model_from_another_tokenizer(sentencepiece, tmp_path):
    directory = str(tmp_path / "sp")
    sentencepiece.save(directory)
    other = SentencePieceTokenizer.train(["something else entirely"] * 5, vocab_size=20)
    with open(os.path.join(directory, "sentencepiece.model"), "wb") as f:
        f.write(other.model_proto)
    with pytest.raises(ValueError, match="belongs to another vocabulary"):
        load_tokenizer(directory)


@pytest.mark.parametrize("name", ["../vocab.txt", "/etc/hostname", ".."])
def test_metadata_cannot_point_outside_the_tokenizer_directory(saved_wordpiece, tmp_path, name):
    # Catches: file names from tokenizer.json joined without confinement (a crafted
    # tokenizer reading any file on the machine).
    directory = str(tmp_path / "tok")
    shutil.copytree(saved_wordpiece, directory)
    shutil.copy(os.path.join(directory, "vocab.txt"), str(tmp_path / "vocab.txt"))
    path = os.path.join(directory, "tokenizer.json")
    with open(path) as f:
        metadata = json.load(f)
    metadata["files"]["vocabulary"] = name
    with open(path, "w") as f:
        json.dump(metadata, f)
    with pytest.raises(ValueError, match="not a plain file name inside the tokenizer's directory"):
        load_tokenizer(directory)


@pytest.mark.parametrize("token", ["a\nb", "c\r", ""])
def test_a_token_must_be_one_non_empty_line(wordpiece, token):
    # Catches: a token with a line break saved to vocab.txt and read back as two tokens
    # under a fingerprint that still matches (both join the tokens with newlines).
    with pytest.raises(ValueError, match="without line breaks"):
        WordPieceTokenizer(list(wordpiece.vocabulary) + [token])


def test_a_token_with_another_line_separator_round_trips(wordpiece, tmp_path):
    # U+2028 is a line boundary for str.splitlines but not for vocab.txt's reader.
    tokenizer = WordPieceTokenizer(list(wordpiece.vocabulary) + ["x\u2028y"])
    loaded = load_tokenizer(tokenizer.save(str(tmp_path / "tok")))
    assert loaded.vocabulary == tokenizer.vocabulary
