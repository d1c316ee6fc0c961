"""A real SummitService in the test process, listening on loopback port 0: for tests that need
real sockets and real TLS but not a separate process (handshakes, channel binding)."""

from pathlib import Path

from twisted.internet import defer, reactor

from summitd.config import parse_config
from summitd.service import SummitService

LOOPBACK_ANY_PORT = "tcp:0:interface=127.0.0.1"


@defer.inlineCallbacks
def start_loopback_service(testcase, accounts=None, extensions=(), starttls=True, direct_tls=True):
    """Start a service with a self-signed certificate in the test's temp dir; it is stopped when
    the test ends. Fires with (service, {"starttls": port, "direct_tls": port})."""
    base = Path(testcase.mktemp()).absolute()
    base.mkdir()
    config = parse_config({
        "server": {"domains": ["localhost"], "data_dir": "data"},
        "c2s": {"endpoints": [LOOPBACK_ANY_PORT] if starttls else [],
                "direct_tls_endpoints": [LOOPBACK_ANY_PORT] if direct_tls else []},
        "storage": {"database": "sqlite:///data/db.sqlite"},
        "extensions": {"enabled": list(extensions)},
    }, base)
    service = SummitService(config, reactor)
    yield service._start()
    testcase.addCleanup(service.stopService)
    for jid, password in (accounts or {}).items():
        yield service.server.account_manager.create(jid, password)
    kinds = [kind for kind, wanted in (("starttls", starttls), ("direct_tls", direct_tls)) if wanted]
    ports = {kind: port.getHost().port for kind, port in zip(kinds, service._ports)}
    return service, ports
