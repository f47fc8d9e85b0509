import io
import logging

import pytest

from keras_transformer.data import read_parallel


def _write(path, content):
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return str(path)


def test_tsv(tmp_path):
    path = _write(tmp_path / "c.tsv", "\ufeffHello, world!\tHallo, Welt!\r\n two \t zwei \n")
    assert read_parallel(path) == [("Hello, world!", "Hallo, Welt!"), ("two", "zwei")]


def test_aligned_files(tmp_path):
    src = _write(tmp_path / "c.en", "one\ntwo\n")
    tgt = _write(tmp_path / "c.de", "eins\nzwei")  # no newline at the end
    assert read_parallel(src, tgt) == [("one", "eins"), ("two", "zwei")]


def test_aligned_files_of_different_lengths(tmp_path):
    src = _write(tmp_path / "c.en", "one\ntwo\nthree\n")
    tgt = _write(tmp_path / "c.de", "eins\nzwei\n")
    with pytest.raises(ValueError, match=f"{src} has 3 lines, {tgt} has 2"):
        read_parallel(src, tgt)


@pytest.mark.parametrize(
    "line, problem",
    [
        ("no tab here", "0 tabs"),
        ("a\tb\tc", "2 tabs"),
        ("", "empty line"),
        ("\tzwei", "empty source"),
    ],
)
def test_malformed_tsv_line(tmp_path, line, problem):
    path = _write(tmp_path / "c.tsv", f"one\teins\n{line}\nthree\tdrei\n")
    with pytest.raises(
        ValueError, match=f"{path}: {problem} at line 2; expected .*skip_bad_lines=True"
    ):
        read_parallel(path)


def test_skip_bad_lines(tmp_path, caplog):
    path = _write(tmp_path / "c.tsv", "one\teins\nbad\n\nthree\tdrei\n")
    with caplog.at_level(logging.WARNING, logger="keras_transformer.data"):
        pairs = read_parallel(path, skip_bad_lines=True)
    assert pairs == [("one", "eins"), ("three", "drei")]
    assert f"skipped 2 malformed line(s) of {path} (first: {path}: 0 tabs at line 2)" in caplog.text


def test_empty_line_in_aligned_file(tmp_path):
    src = _write(tmp_path / "c.en", "one\n\nthree\n")
    tgt = _write(tmp_path / "c.de", "eins\nzwei\ndrei\n")
    with pytest.raises(ValueError, match=f"{src}: empty line at line 2"):
        read_parallel(src, tgt)
    assert read_parallel(src, tgt, skip_bad_lines=True) == [("one", "eins"), ("three", "drei")]


def test_not_utf8(tmp_path):
    path = _write(tmp_path / "c.tsv", "one\teins\nf\xfcnf\tfive\n".encode("latin-1"))
    with pytest.raises(
        ValueError, match=rf"{path} is not valid UTF-8: byte 0xfc at byte offset 10 \(line 2\)"
    ):
        read_parallel(path)


def test_empty_corpus(tmp_path):
    path = _write(tmp_path / "c.tsv", "")
    with pytest.raises(ValueError, match=f"{path} holds no sentence pairs"):
        read_parallel(path)
    path = _write(tmp_path / "d.tsv", "bad\n")
    with pytest.raises(ValueError, match=r"holds no sentence pairs \(1 malformed lines skipped\)"):
        read_parallel(path, skip_bad_lines=True)


def test_missing_file(tmp_path):
    missing = str(tmp_path / "nope.tsv")
    with pytest.raises(FileNotFoundError, match=f"parallel corpus file not found: {missing}"):
        read_parallel(missing)
    with pytest.raises(FileNotFoundError, match=missing):
        read_parallel(_write(tmp_path / "c.en", "one\n"), missing)


def test_decoded_lines_are_utf8_without_byte_order_mark_or_line_ends():
    # Catches: a byte-order mark or a \r kept in the first or any line (translated as
    # text), and bytes that are not UTF-8 reported without the input's name and line.
    from keras_transformer.data.readers import decode_lines
    from keras_transformer.errors import InputError

    lines = decode_lines(io.BytesIO("\ufeffone\r\ntwo\n\nthree".encode()), "in.txt")
    assert list(lines) == ["one", "two", "", "three"]
    with pytest.raises(InputError, match="in.txt is not valid UTF-8: byte 0xe9 on line 2"):
        list(decode_lines(io.BytesIO(b"one\ncaf\xe9\n"), "in.txt"))
