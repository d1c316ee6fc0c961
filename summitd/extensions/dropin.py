"""A light IExtensionFactory for plugin declarations: names a module, imports it on build.

In ``twisted/plugins/yourpkg_summitd.py``::

    from summitd.extensions.dropin import ExtensionFactory
    hello = ExtensionFactory("hello", "Says hello.", "yourpkg.hello")

``yourpkg.hello`` defines ``build(context, config) -> IExtension`` and, if it has
options, ``parse_config(raw, path)`` (without one, any option is an error).
"""

import importlib

from twisted.plugin import IPlugin
from zope.interface import implementer

from summitd.config import ConfigError
from summitd.extensions.interfaces import IExtensionFactory


@implementer(IPlugin, IExtensionFactory)
class ExtensionFactory:
    def __init__(self, name, description, module, requires=()):
        self.name = name
        self.description = description
        self.module = module
        self.requires = tuple(requires)

    def _module(self):
        return importlib.import_module(self.module)

    def parse_config(self, raw, path):
        parse = getattr(self._module(), "parse_config", None)
        if parse is not None:
            return parse(raw, path)
        if raw:
            raise ConfigError([(f"{path}.{key}", "unknown option") for key in raw])
        return None

    def build(self, context, config):
        return self._module().build(context, config)

    def __repr__(self):
        return f"<ExtensionFactory {self.name} from {self.module}>"
