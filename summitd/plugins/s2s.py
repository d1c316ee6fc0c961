"""Federation (RFC 6120 server-to-server, RFC 7590, XEP-0220, XEP-0288, XEP-0368) as an
extension: the core stays small and only knows ``STANZA_TO_REMOTE``.

It listens on ``[s2s] endpoints`` (and ``direct_tls_endpoints``), takes stanzas for
other domains from the router, and routes what peers send after their streams
checked it. The configuration lives in the server's top-level ``[s2s]`` and
``[dns]`` tables (``summitd.transports.s2s.config``, ``summitd.dns.config``); until
``summitd.config`` reads them, the same keys are accepted in ``[extensions.s2s]``,
with ``[extensions.s2s.dns]`` for the DNS ones. TLS uses the server's ``[tls]``
certificate (or the generated one) for both directions; without one, federation
runs only where ``require_encryption = false``.
"""

from dataclasses import dataclass, replace

from twisted.internet import defer, endpoints
from twisted.internet.interfaces import IReactorTCP
from twisted.protocols.tls import TLSMemoryBIOFactory

from summitd.config import ConfigError
from summitd.core import events
from summitd.core.hooks import Priority
from summitd.dns.config import DNSConfig, parse_dns_config
from summitd.extensions.base import Extension
from summitd.tls import certificate_paths
from summitd.transports.s2s.certs import TrustStore, load_tls
from summitd.transports.s2s.config import S2SConfig, parse_s2s_config
from summitd.transports.s2s.connect import Connector
from summitd.transports.s2s.incoming import IncomingFactory
from summitd.transports.s2s.manager import S2SManager

LISTEN_BACKLOG = 1024


@dataclass(frozen=True)
class S2SOptions:
    """``[extensions.s2s]``: the [s2s] keys, and [dns] ones under ``dns``; None = not given."""
    s2s: S2SConfig | None = None
    dns: DNSConfig | None = None


def parse_config(raw, path):
    if not raw:
        return S2SOptions()
    raw = dict(raw)
    dns_raw = raw.pop("dns", None)
    errors = []
    s2s = dns = None
    try:
        s2s = parse_s2s_config(raw, path)
    except ConfigError as e:
        errors.extend(e.errors)
    if dns_raw is not None:
        try:
            dns = parse_dns_config(dns_raw, f"{path}.dns", ".")
        except ConfigError as e:
            errors.extend(e.errors)
    if errors:
        raise ConfigError(errors)
    return S2SOptions(s2s, dns)


def effective_configs(server_config, options):
    """(S2SConfig, DNSConfig): the extension's own tables win, then the server's [s2s]/[dns]."""
    s2s = options.s2s or getattr(server_config, "s2s", None) or S2SConfig()
    if s2s.ca_bundle is not None and not s2s.ca_bundle.is_absolute():
        s2s = replace(s2s, ca_bundle=server_config.resolve(s2s.ca_bundle))
    dns = options.dns or getattr(server_config, "dns", None) or DNSConfig()
    return s2s, dns


class Federation(Extension):
    def __init__(self, context, options):
        super().__init__(context)
        server_config = context.server_config()
        self.config, dns_config = effective_configs(server_config, options or S2SOptions())
        if self.config.ca_bundle is not None and not self.config.ca_bundle.is_file():
            raise ConfigError([("s2s.ca_bundle", f"{self.config.ca_bundle} is not a file")])
        tls = self._load_tls(server_config)
        trust = TrustStore(self.config.ca_bundle)
        connector = Connector(context.reactor(), self.config, dns_config, tls)
        self.manager = S2SManager(context, self.config, connector, tls, trust, server_config.server.domains)
        self._ports = []
        context.hook(events.STANZA_TO_REMOTE, self.manager.stanza_to_remote, Priority.DELIVER)

    def _load_tls(self, server_config):
        cert, key = certificate_paths(server_config)
        if not (cert.exists() and key.exists()):
            if IReactorTCP.providedBy(self.context.reactor()):     # not summitctl's offline server
                self.context.log.warn("s2s: no certificate at {cert}: federation without TLS", cert=str(cert))
            return None
        return load_tls(cert, key)

    @defer.inlineCallbacks
    def start(self):
        reactor = self.context.reactor()
        manager = self.manager
        if not IReactorTCP.providedBy(reactor):
            return      # summitctl and tests run the server on a fake clock: nothing to listen on
        for description in self.config.endpoints:
            yield self._listen(reactor, description, IncomingFactory(manager), "s2s (STARTTLS)")
        if self.config.direct_tls_endpoints and manager.tls is None:
            raise ConfigError([("s2s.direct_tls_endpoints", "direct TLS needs a certificate ([tls])")])
        for description in self.config.direct_tls_endpoints:
            factory = TLSMemoryBIOFactory(manager.tls.direct_options, False, IncomingFactory(manager, True))
            yield self._listen(reactor, description, factory, "s2s (direct TLS)")

    @defer.inlineCallbacks
    def _listen(self, reactor, description, factory, what):
        if description.startswith(("tcp:", "tcp6:")) and "backlog=" not in description:
            description += f":backlog={LISTEN_BACKLOG}"
        port = yield endpoints.serverFromString(reactor, description).listen(factory)
        self._ports.append(port)
        self.context.log.info("{what} listening on {address}", what=what, address=port.getHost())

    @defer.inlineCallbacks
    def stop(self):
        ports, self._ports = self._ports, []
        for port in ports:
            yield port.stopListening()
        self.manager.shutdown()


def build(context, options):
    return Federation(context, options)
