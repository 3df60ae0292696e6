"""One exception type for every problem a user can fix; the CLI prints it as one line."""

__all__ = ["KagtoolsError"]


class KagtoolsError(Exception):
    """A problem with the user's input or environment, stated in one clear line."""
