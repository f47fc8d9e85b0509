"""InputError: the one exception this package raises for a mistake in what it was given.

Every check of a caller's input (a setting, an id, a string, a file, a flag) raises
`InputError` with one line that says what was expected and what came. It is a
`ValueError`, so `except ValueError` keeps catching it; the command line prints it in
one line and exits with status 2, while any other exception (a fault of ours or of a
library below us) keeps its traceback, so that a bug is never disguised as a user's
mistake.
"""


class InputError(ValueError):
    """Bad input: the message names what was expected and what was given."""


def first_line(error):
    """The first line of an exception's message (its type's name if it has none), for
    an InputError that reports what a library below us said."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
