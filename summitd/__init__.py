"""summitd: an XMPP server on Twisted with a small core and plugin extensions."""

from summitd import _compat  # noqa: F401  (must run before any wokkel import)
from summitd.version import NAME, VERSION, RELEASE_DATE  # noqa: F401

__all__ = ["NAME", "VERSION", "RELEASE_DATE"]
