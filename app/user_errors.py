"""Which exceptions a page shows as a message (not a traceback), and their text.

mpo_core raises ``ValueError``/``TypeError`` with messages written for users;
``KeyError`` names a missing weight or column; ``OSError``/``ImportError``
come from reading files (a missing model package, GLUE folder or run).
``MemoryError`` and ``RuntimeError`` (torch's failed allocations and shape
errors) come from inputs too large or odd for this machine; the memory budget
(:mod:`app.memory_budget`) refuses the foreseeable ones before allocating, and
these catch the rest, so that no input ends in a traceback.
"""
USER_ERRORS = (ValueError, TypeError, KeyError, OSError, ImportError, MemoryError, RuntimeError)


def message(exc: Exception) -> str:
    """The user-facing text of ``exc`` (a ``KeyError``'s argument without its quotes)."""
    if isinstance(exc, MemoryError):
        detail = f" ({exc})" if str(exc) else ""
        return f"Not enough memory for this request{detail}: choose a smaller matrix, factors or image."
    return str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
