"""One exception type whose message is the whole story: what was wrong and what to do."""


class EmzooError(Exception):
    """A user-facing error; the CLI prints its message on one line, without a traceback."""
