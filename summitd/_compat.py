"""The one compatibility shim: lets wokkel 18.0.0 import on current Twisted.

wokkel 18.0.0 still imports ``twisted.python.compat._PY3`` and
``twisted.python.constants``; both are gone from current Twisted (the latter now
lives in the ``constantly`` package). ``summitd/__init__.py`` imports this module
before anything can import wokkel, so every wokkel import in the project goes
through here. ``summitd.test.test_compat`` keeps it honest.
"""

import sys

import constantly
from twisted.python import compat


def install():
    """Put back what wokkel expects. Idempotent."""
    if not hasattr(compat, "_PY3"):
        compat._PY3 = True
    if "twisted.python.constants" not in sys.modules:
        try:
            import twisted.python.constants  # noqa: F401  (an old Twisted still has it)
        except ImportError:
            sys.modules["twisted.python.constants"] = constantly


install()
