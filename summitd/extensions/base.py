"""A convenience base for extensions whose registrations all happen in build()."""

from zope.interface import implementer

from summitd.extensions.interfaces import IExtension


@implementer(IExtension)
class Extension:
    """Keeps the context; start() and stop() do nothing unless overridden."""

    def __init__(self, context):
        self.context = context

    def start(self):
        return None

    def stop(self):
        return None
