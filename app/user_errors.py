"""Which exceptions a page shows as a message (not a traceback), and their text.

mpo_core raises ``ValueError``/``TypeError`` with messages written for users;
``KeyError`` names a missing weight or column; ``OSError``/``ImportError``
come from reading files (a missing model package, GLUE folder or run).
"""
USER_ERRORS = (ValueError, TypeError, KeyError, OSError, ImportError)


def message(exc: Exception) -> str:
    """The user-facing text of ``exc`` (a ``KeyError``'s argument without its quotes)."""
    return str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
