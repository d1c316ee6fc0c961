"""The echo extension: answers <echo xmlns='urn:example:echo'>text</echo> with the same
text behind a configurable prefix. Small on purpose: it shows an option, an IQ
handler, a disco feature and a stanza error, all through the public plugin API."""

from twisted.words.xish import domish

from summitd.config import ConfigError
from summitd.core.errors import StanzaError
from summitd.core.iq import SERVER
from summitd.extensions.base import Extension

NS_ECHO = "urn:example:echo"
MAX_LENGTH = 1024


def parse_config(raw, path):
    """Options: prefix (a string, default 'echo: ')."""
    errors = [(f"{path}.{key}", "unknown option") for key in raw if key != "prefix"]
    prefix = raw.get("prefix", "echo: ")
    if not isinstance(prefix, str):
        errors.append((f"{path}.prefix", "must be a string"))
    if errors:
        raise ConfigError(errors)
    return {"prefix": prefix}


class Echo(Extension):
    def __init__(self, context, prefix):
        super().__init__(context)
        self.prefix = prefix
        context.iq("get", SERVER, NS_ECHO, "echo", self.echo)
        context.add_feature(NS_ECHO)

    def echo(self, iq, to_jid):
        text = str(next(iq.elements())).strip()
        if len(text) > MAX_LENGTH:
            raise StanzaError("not-acceptable", f"at most {MAX_LENGTH} characters")
        reply = domish.Element((NS_ECHO, "echo"))
        reply.addContent(self.prefix + text)
        return reply


def build(context, config):
    return Echo(context, config["prefix"])
