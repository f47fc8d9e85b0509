"""A real parallel corpus available offline: the gettext catalogs a system installs.

Every translated program ships binary message catalogs,
`<prefix>/share/locale/<lang>/LC_MESSAGES/<domain>.mo`, that map an English message
(msgid) to its human translation (msgstr). Read across all domains, they give tens of
thousands of English sentences of user-interface and command-line text with their
translations: error messages, option descriptions, menu labels.

`read_gettext_pairs` turns them into sentence pairs:

1. every `*.mo` of the language is parsed with Python's `gettext` module (a catalog
   that does not parse is skipped and counted in one warning);
2. plural forms and the header entry are left out, and so are the code-list domains
   (`iso_*`: names of languages, countries and currencies, not sentences);
3. messages holding format directives (`%s`, `%1$d`, `{0}`, `${x}`) or markup (`<b>`,
   `&amp;`) are dropped: their placeholders are not language;
4. whitespace is normalised (runs of spaces, tabs, newlines and no-break spaces become
   one space) and keyboard accelerators are removed (`_File` -> `File`);
5. pairs whose translation equals the source (untranslated) are dropped, and each
   English message is kept once (first domain in sorted order wins).

`gettext_corpus` splits the pairs into train, dev and test with a seeded shuffle.

Example:

>>> corpus = gettext_corpus("fr", dev_size=1000, test_size=1000)   # doctest: +SKIP
>>> corpus.train[0]                                                 # doctest: +SKIP
('cannot generate output file', 'ne peut générer le fichier de sortie')
"""

import fnmatch
import gettext
import glob
import logging
import os
import random
import re

from keras_transformer.data.corpus import Corpus
from keras_transformer.errors import InputError

logger = logging.getLogger("keras_transformer.data")

DEFAULT_LOCALE_DIR = "/usr/share/locale"
EXCLUDED_DOMAINS = ("iso_*",)

_FORMAT_DIRECTIVE = re.compile(
    r"%(\d+\$)?[-+ #0']*(\d+|\*)?(\.(\d+|\*))?(hh|h|ll|l|L|q|j|z|Z|t)?[diouxXeEfFgGaAcspnmCS%]"
    r"|\{[^{}]*\}|\$\{"
)
_MARKUP = re.compile(r"<[^<>]+>|&[a-zA-Z#][\w]*;")
# A mnemonic underscore starts a word: "_File", "Save _As"; "snake_case" keeps its own.
_ACCELERATOR = re.compile(r"(?<![\w])_(?=\w)")


def _clean(message):
    """The message normalised, or None when it holds format directives or markup."""
    if _FORMAT_DIRECTIVE.search(message) or _MARKUP.search(message):
        return None
    return " ".join(_ACCELERATOR.sub("", message).split())


def read_gettext_pairs(
    target_lang, locale_dir=DEFAULT_LOCALE_DIR, exclude_domains=EXCLUDED_DOMAINS
):
    """English -> `target_lang` pairs from the gettext catalogs under `locale_dir`.

    Args:
        target_lang: the catalog language folder, e.g. "fr", "es", "pt_BR".
        locale_dir: the folder holding `<lang>/LC_MESSAGES/*.mo`.
        exclude_domains: glob patterns of catalog names (without `.mo`) to skip.

    Returns:
        list of (English, translation) str pairs, in a fixed order (domains sorted by
        name, messages in catalog order).

    Raises:
        FileNotFoundError: no catalogs for `target_lang` under `locale_dir`.
        ValueError: the catalogs hold no usable pair.
    """
    directory = os.path.join(os.fspath(locale_dir), target_lang, "LC_MESSAGES")
    paths = sorted(glob.glob(os.path.join(glob.escape(directory), "*.mo")))
    if not paths:
        available = sorted(
            lang
            for lang in (os.listdir(locale_dir) if os.path.isdir(locale_dir) else [])
            if os.path.isdir(os.path.join(locale_dir, lang, "LC_MESSAGES"))
        )
        raise FileNotFoundError(
            f"no gettext catalogs (*.mo) in {directory}; languages with catalogs under "
            f"{locale_dir}: {', '.join(available[:30]) or 'none'} (catalogs come with the "
            "system's translated packages)"
        )
    pairs, seen, unreadable = [], set(), []
    for path in paths:
        domain = os.path.basename(path)[: -len(".mo")]
        if any(fnmatch.fnmatch(domain, pattern) for pattern in exclude_domains):
            continue
        try:
            with open(path, "rb") as handle:
                catalog = gettext.GNUTranslations(handle)._catalog
        except (OSError, UnicodeDecodeError, LookupError, ValueError) as error:
            # gettext raises OSError for a bad magic number, others for bad charsets.
            unreadable.append(f"{os.path.basename(path)} ({error})")
            continue
        for msgid, msgstr in catalog.items():
            if not isinstance(msgid, str) or not msgid:  # plural forms, header
                continue
            source, target = _clean(msgid), _clean(msgstr)
            if not source or not target or source == target or source in seen:
                continue
            seen.add(source)
            pairs.append((source, target))
    if unreadable:
        logger.warning(
            "skipped %d unreadable catalog(s) in %s: %s",
            len(unreadable),
            directory,
            "; ".join(unreadable[:5]),
        )
    if not pairs:
        raise InputError(f"the catalogs in {directory} hold no usable message pairs")
    return pairs


def gettext_corpus(
    target_lang, locale_dir=DEFAULT_LOCALE_DIR, dev_size=1000, test_size=1000, seed=0
):
    """`read_gettext_pairs` split into a `Corpus` by a shuffle seeded with `seed`.

    Args:
        target_lang: e.g. "fr" or "es".
        locale_dir: the folder holding `<lang>/LC_MESSAGES/*.mo`.
        dev_size, test_size: pairs held out for validation and for testing.
        seed: the split's shuffle seed; the same seed gives the same split.
    """
    pairs = read_gettext_pairs(target_lang, locale_dir)
    if dev_size < 0 or test_size < 0:
        raise InputError(f"dev_size and test_size must be >= 0; got {dev_size}, {test_size}")
    if dev_size + test_size >= len(pairs):
        raise InputError(
            f"the {target_lang} catalogs give {len(pairs)} pairs, too few for "
            f"dev_size={dev_size} plus test_size={test_size} and a training split"
        )
    random.Random(seed).shuffle(pairs)
    return Corpus(
        train=pairs[dev_size + test_size :],
        dev=pairs[:dev_size],
        test=pairs[dev_size : dev_size + test_size],
    )
