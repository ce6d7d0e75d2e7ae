"""The project's error type: the CLI turns it into a one-line message and exit code 1."""


class RetrError(Exception):
    """A user-facing error (bad input, bad path, wrong model for an index). Never a bug."""
