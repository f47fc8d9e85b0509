"""The gettext corpus reader, on catalogs written here in the GNU .mo format."""

import logging
import os

import pytest
from mo_files import write_mo

from keras_transformer.data import gettext_corpus, read_gettext_pairs


@pytest.fixture
def locale_dir(tmp_path):
    root = tmp_path / "locale"
    write_mo(
        str(root / "fr" / "LC_MESSAGES" / "app.mo"),
        {
            "Open file": "Ouvrir le fichier",
            "cannot open %s": "impossible d'ouvrir %s",  # format string: dropped
            "Remove {name}?": "Supprimer {name} ?",  # format string: dropped
            "<b>Bold</b> text": "texte <b>gras</b>",  # markup: dropped
            "Save _As": "Enregistrer _sous",  # accelerator removed
            "line one\n  line\ttwo": "ligne un\nligne\u00a0deux",  # whitespace normalised
            "OK": "OK",  # untranslated: dropped
            "Quit": "",  # untranslated: dropped
            ("one file", "%d files"): ["un fichier", "%d fichiers"],  # plural: dropped
        },
    )
    write_mo(
        str(root / "fr" / "LC_MESSAGES" / "zz_other.mo"),
        {
            "Open file": "Ouvrir un fichier",  # duplicate msgid: the first domain wins
            "Close window": "Fermer la fenêtre",
        },
    )
    write_mo(str(root / "fr" / "LC_MESSAGES" / "iso_3166-1.mo"), {"France": "La France"})
    write_mo(str(root / "es" / "LC_MESSAGES" / "app.mo"), {"Open file": "Abrir archivo"})
    return str(root)


def test_reads_clean_pairs_from_every_catalog(locale_dir):
    # Catches: format strings, markup, plurals, untranslated or code-list entries kept;
    # accelerators or odd whitespace left in; duplicates kept or the wrong one kept.
    assert read_gettext_pairs("fr", locale_dir) == [
        ("Open file", "Ouvrir le fichier"),
        ("Save As", "Enregistrer sous"),
        ("line one line two", "ligne un ligne deux"),
        ("Close window", "Fermer la fenêtre"),
    ]
    assert read_gettext_pairs("es", locale_dir) == [("Open file", "Abrir archivo")]


def test_corrupt_catalog_is_skipped_with_one_warning(locale_dir, caplog):
    with open(os.path.join(locale_dir, "fr", "LC_MESSAGES", "broken.mo"), "wb") as handle:
        handle.write(b"not a catalog at all")
    with caplog.at_level(logging.WARNING, logger="keras_transformer.data"):
        pairs = read_gettext_pairs("fr", locale_dir)
    assert len(pairs) == 4
    assert "broken.mo" in caplog.text and "1 unreadable" in caplog.text


def test_missing_language_names_the_folder_and_the_languages_there(locale_dir):
    with pytest.raises(FileNotFoundError, match=r"de/LC_MESSAGES.*es, fr"):
        read_gettext_pairs("de", locale_dir)


def test_split_is_seeded_disjoint_and_complete(tmp_path):
    root = str(tmp_path / "locale")
    messages = {f"message number {i}": f"message numéro {i}" for i in range(50)}
    write_mo(os.path.join(root, "fr", "LC_MESSAGES", "app.mo"), messages)
    corpus = gettext_corpus("fr", root, dev_size=5, test_size=7, seed=3)
    assert (len(corpus.train), len(corpus.dev), len(corpus.test)) == (38, 5, 7)
    assert sorted(corpus.train + corpus.dev + corpus.test) == sorted(messages.items())
    assert gettext_corpus("fr", root, dev_size=5, test_size=7, seed=3) == corpus
    assert gettext_corpus("fr", root, dev_size=5, test_size=7, seed=4).test != corpus.test
    with pytest.raises(ValueError, match="too few"):
        gettext_corpus("fr", root, dev_size=25, test_size=25)
