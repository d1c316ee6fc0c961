"""What the MUC and MIX services do alike: one service domain per hosted domain (served through
``context.host_component``, which also declares it a local service for federation; XEP-0045
§6.1 / XEP-0369 §6.1), listed in the domain's disco#items; stanza errors
answered from the address they were sent to (with the XEP-0045 'by'); IQ answers from
handlers that may return Deferreds; the options both take (``host``, ``name``).
"""

from dataclasses import fields

from twisted.internet import defer

from summitd.config import ConfigError
from summitd.core import events
from summitd.core.errors import StanzaError
from summitd.core.jid import InvalidJID, parse_jid, prepare_domain
from summitd.extensions.base import Extension
from summitd.plugins.channels.coexistence import Face
from summitd.plugins.channels.directory import IChannelDirectory
from summitd.plugins.channels.stanzas import error_reply, iq_result
from summitd.plugins.disco import items_element


def valid_host(template):
    try:
        prepare_domain(template.replace("{domain}", "example.org"))
    except InvalidJID:
        return False
    return True


def parse_options(raw, path, cls, choices=None):
    """A frozen dataclass ``cls`` from an extension's table: every option of the type of its
    default, ``host`` a domain template, ``choices`` {option: allowed values}."""
    known = {f.name for f in fields(cls)}
    errors = [(f"{path}.{key}", "unknown option") for key in raw if key not in known]
    values = {}
    for key in known & set(raw):
        value, expected = raw[key], type(getattr(cls, key))
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            errors.append((f"{path}.{key}", f"must be a {expected.__name__}"))
        elif key in (choices or {}) and value not in choices[key]:
            errors.append((f"{path}.{key}", "must be one of " + ", ".join(choices[key])))
        elif key == "host" and not valid_host(value):
            errors.append((f"{path}.host", "must be a domain name, with {domain} for the hosted domain"))
        else:
            values[key] = value
    if errors:
        raise ConfigError(errors)
    return cls(**values)


def service_hosts(template, domains):
    """{service domain: hosted domain} for a host template such as "conference.{domain}"."""
    return {template.replace("{domain}", domain): domain for domain in sorted(domains)}


class ServiceFace(Extension, Face):
    """A face of the channels served at ``config.host``; subclasses implement ``dispatch``."""

    def __init__(self, context, config):
        super().__init__(context)
        self.config = config
        self.directory = context.need(IChannelDirectory)
        self.services = service_hosts(config.host, context.domains)
        self.hosts = {domain: service for service, domain in self.services.items()}
        for service in self.services:
            context.host_component(service, self.stanza)
        context.hook(events.SERVER_DISCO_ITEMS, self._listed)
        self._unregister = None

    def start(self):
        self._unregister = self.directory.hub.register(self)

    def stop(self):
        if self._unregister is not None:
            self._unregister()

    def address(self, channel):
        return f"{channel.name}@{self.hosts[channel.host]}"

    def service_host(self, host):
        return self.hosts.get(host)

    def _listed(self, host):
        service = self.hosts.get(host)
        return [(service, None, self.config.name)] if service else None

    def public_channels(self, domain):
        """disco#items of the service: its public, configured channels."""
        return items_element([(self.address(c), None, c.config.name or None)
                              for c in self.directory.channels(domain) if c.config.public and not c.locked])

    # -- stanzas ------------------------------------------------------------------------------

    def stanza(self, stanza, to_jid):
        """Everything routed to the service or its JIDs (the host_component handler)."""
        try:
            sender = parse_jid(stanza.getAttribute("from", ""))
        except InvalidJID:
            return
        try:
            self.dispatch(stanza, to_jid, sender)
        except StanzaError as e:
            self.bounce(stanza, e)

    def dispatch(self, stanza, to_jid, sender):
        raise NotImplementedError

    def error_payload(self, original):
        """What an error answer carries besides <error/> (MUC: <x/> on presence)."""
        return None

    def bounce(self, original, error):
        """Answer with an error, unless the stanza is itself an error or a result."""
        type = original.getAttribute("type")
        if type == "error" or (original.name == "iq" and type == "result"):
            return
        by = original.getAttribute("to", "").partition("/")[0]
        self.context.route(error_reply(original, error, by, self.error_payload(original)))

    def answer(self, iq, answer):
        """Reply to an IQ with what ``answer`` (a Deferred or a payload) gives."""
        d = answer if isinstance(answer, defer.Deferred) else defer.succeed(answer)
        d.addCallbacks(lambda payload: self.context.route(iq_result(iq, payload)), self._iq_failed,
                       errbackArgs=(iq,))

    def _iq_failed(self, failure, iq):
        if failure.check(StanzaError):
            self.bounce(iq, failure.value)
            return
        self.context.log.failure("{kind}: request to {to} failed", failure, kind=self.kind,
                                 to=iq.getAttribute("to"))
        self.bounce(iq, StanzaError("internal-server-error"))
