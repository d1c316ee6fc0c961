"""A small authoritative DNS server for tests, on loopback UDP and TCP (same port).

It answers from dnspython zones the way a recursive resolver would present them: for
each query the deepest zone containing the name answers (DS queries at a zone's apex
go to the parent), with the RRSIGs and the NSEC/NSEC3 records of authenticated denial
when the query has the DO bit. Why not ``twisted.names.server``: it cannot encode
RRSIG/DNSKEY/NSEC3 records, and its NXDOMAIN path drops the authority section that
carries the denial proofs. CNAMEs and DNAMEs are followed and wildcards expanded, as a
resolver would present them. Options make it misbehave on purpose: ``set_ad`` (claim
validated answers), ``truncate_udp`` (force the TCP fallback), ``silent`` (never
answer: timeouts), ``strip_denial`` (omit NSEC/NSEC3 proofs).
"""

import bisect

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from twisted.internet import defer, error, protocol
from twisted.protocols.basic import Int16StringReceiver

from summitd.test.dns_fixtures.zones import nsec3_owner

_IN = dns.rdataclass.IN
_DENIAL = (dns.rdatatype.NSEC, dns.rdatatype.NSEC3)


class _Zone:
    """One zone plus the sorted owners of its NSEC and NSEC3 records, for proofs."""

    def __init__(self, zone):
        self.zone = zone
        self.origin = zone.origin
        self.nsec = sorted(name for name, node in zone.nodes.items()
                           if node.get_rdataset(_IN, dns.rdatatype.NSEC))
        self.nsec3 = sorted(name for name, node in zone.nodes.items()
                            if node.get_rdataset(_IN, dns.rdatatype.NSEC3))

    def exists(self, name):
        return name in self.zone.nodes or any(
            other.is_subdomain(name) for other in self.zone.nodes)   # empty non-terminals too

    def closest_encloser(self, name):
        while not self.exists(name):
            name = name.parent()
        return name

    def _matching_or_covering(self, owners, name):
        """The owner equal to ``name``, else the one before it on the circular chain."""
        if not owners:
            return None
        index = bisect.bisect_right(owners, name) - 1
        return owners[index]          # index -1 wraps to the last record: it covers the start

    def denial_owners(self, name, nxdomain):
        """The NSEC/NSEC3 owners proving ``name`` (or its type) absent."""
        if self.nsec:
            owners = {self._matching_or_covering(self.nsec, name)}
            if nxdomain:
                wildcard = dns.name.Name((b"*",) + self.closest_encloser(name).labels)
                owners.add(self._matching_or_covering(self.nsec, wildcard))
            return owners
        if not self.nsec3:
            return set()
        hashed = nsec3_owner(name, self.origin)
        if not nxdomain and hashed in self.nsec3:
            return {hashed}
        encloser = self.closest_encloser(name if nxdomain else name.parent())
        while nsec3_owner(encloser, self.origin) not in self.nsec3:
            encloser = encloser.parent()           # opt-out: unsigned delegations have no record
        next_closer = name.split(len(encloser) + 1)[1]
        owners = {nsec3_owner(encloser, self.origin),
                  self._matching_or_covering(self.nsec3, nsec3_owner(next_closer, self.origin))}
        if nxdomain:
            wildcard = dns.name.Name((b"*",) + encloser.labels)
            owners.add(self._matching_or_covering(self.nsec3, nsec3_owner(wildcard, self.origin)))
        return owners


class Listener:
    """Listening ports and live TCP connections, all closed by ``stop()`` (a Deferred)."""

    def __init__(self):
        self.listening = []
        self.connections = set()

    def stop(self):
        waits = [defer.maybeDeferred(port.stopListening) for port in self.listening]
        for connection in list(self.connections):
            waits.append(connection.closed)
            connection.transport.abortConnection()
        return defer.DeferredList(waits)


class Tracked(protocol.Protocol):
    """A server-side protocol that its Listener can wait for: ``closed`` fires on disconnect."""

    def __init__(self, listener):
        self.listener = listener
        self.closed = defer.Deferred()

    def connectionMade(self):
        self.listener.connections.add(self)

    def connectionLost(self, reason):
        self.listener.connections.discard(self)
        self.closed.callback(None)


class DNSTestServer(Listener):
    """Serves ``zones`` (dnspython Zone objects) on 127.0.0.1; ``start()`` returns the port."""

    def __init__(self, reactor, zones, set_ad=False, truncate_udp=False, silent=False,
                 strip_denial=False):
        super().__init__()
        self.reactor = reactor
        self.zones = [_Zone(zone) for zone in zones]
        self.set_ad = set_ad
        self.truncate_udp = truncate_udp
        self.silent = silent
        self.strip_denial = strip_denial
        self.queries = []          # (transport, name text, type text) in arrival order
        self.port = None

    def start(self):
        """Listen on a free UDP port and the same TCP port; returns the port number."""
        for _ in range(20):
            udp = self.reactor.listenUDP(0, _UDPServer(self), interface="127.0.0.1")
            port = udp.getHost().port
            try:
                tcp = self.reactor.listenTCP(port, _TCPFactory(self), interface="127.0.0.1")
            except error.CannotListenError:
                udp.stopListening()
                continue
            self.listening = [udp, tcp]
            self.port = port
            return port
        raise RuntimeError("no free port for the test DNS server")

    # -- answers -----------------------------------------------------------------------

    def handle(self, data, transport):
        try:
            query = dns.message.from_wire(data)
        except dns.exception.DNSException:
            return None
        question = query.question[0]
        self.queries.append((transport, question.name.to_text(), dns.rdatatype.to_text(question.rdtype)))
        if self.silent:
            return None
        response = dns.message.make_response(query, our_payload=1232)
        response.flags |= dns.flags.AA
        if self.set_ad:
            response.flags |= dns.flags.AD
        dnssec = query.ednsflags & dns.flags.DO
        self._answer(response, question.name, question.rdtype, dnssec)
        if transport == "udp" and self.truncate_udp:
            truncated = dns.message.make_response(query, our_payload=1232)
            truncated.flags |= dns.flags.TC
            return truncated.to_wire()
        try:
            return response.to_wire(max_size=query.payload if transport == "udp" else 65535)
        except dns.exception.TooBig:
            truncated = dns.message.make_response(query)
            truncated.flags |= dns.flags.TC
            return truncated.to_wire()

    def _zone_for(self, name, rdtype):
        candidates = [z for z in self.zones if name.is_subdomain(z.origin)
                      and not (rdtype == dns.rdatatype.DS and name == z.origin)]
        return max(candidates, key=lambda z: len(z.origin), default=None)

    def _add(self, section, zone, source, rdtype, dnssec, owner=None):
        """Copy ``source``'s ``rdtype`` RRset (and its RRSIGs) under ``owner`` (default: same)."""
        owner = owner or source
        rdataset = zone.zone.nodes[source].get_rdataset(_IN, rdtype)
        section.append(dns.rrset.from_rdata_list(owner, rdataset.ttl, list(rdataset)))
        sigs = zone.zone.nodes[source].get_rdataset(_IN, dns.rdatatype.RRSIG, rdtype)
        if dnssec and sigs:
            section.append(dns.rrset.from_rdata_list(owner, sigs.ttl, list(sigs)))

    def _add_denial(self, response, zone, name, nxdomain, dnssec):
        if dnssec and not self.strip_denial:
            for owner in sorted(zone.denial_owners(name, nxdomain)):
                for rdtype in _DENIAL:
                    if zone.zone.nodes[owner].get_rdataset(_IN, rdtype):
                        self._add(response.authority, zone, owner, rdtype, dnssec)

    @staticmethod
    def _dname_above(zone, name):
        for depth in range(len(zone.origin) + 1, len(name)):
            owner = name.split(depth)[1]
            node = zone.zone.nodes.get(owner)
            if node is not None and node.get_rdataset(_IN, dns.rdatatype.DNAME):
                return owner, node.get_rdataset(_IN, dns.rdatatype.DNAME)[0].target
        return None

    def _answer(self, response, name, rdtype, dnssec):
        """Answer like a resolver: follow CNAMEs and DNAMEs (synthesizing the unsigned CNAME,
        RFC 6672), expand wildcards (with the NSEC proof that the name itself is absent)."""
        for _ in range(8):
            zone = self._zone_for(name, rdtype)
            if zone is None:
                response.set_rcode(dns.rcode.REFUSED if not response.answer else dns.rcode.NOERROR)
                return
            dname = self._dname_above(zone, name)
            if dname is not None:
                self._add(response.answer, zone, dname[0], dns.rdatatype.DNAME, dnssec)
                target = name.relativize(dname[0]).concatenate(dname[1])
                response.answer.append(dns.rrset.from_text(name, 300, "IN", "CNAME", target.to_text()))
                name = target
                continue
            source = name
            if not zone.exists(name):
                source = dns.name.Name((b"*",) + zone.closest_encloser(name).labels)
            node = zone.zone.nodes.get(source)
            if node is not None and node.get_rdataset(_IN, rdtype):
                self._add(response.answer, zone, source, rdtype, dnssec, owner=name)
                if source != name:
                    self._add_denial(response, zone, name, False, dnssec)
                return
            cname = node.get_rdataset(_IN, dns.rdatatype.CNAME) if node is not None else None
            if cname is None:
                break
            self._add(response.answer, zone, source, dns.rdatatype.CNAME, dnssec, owner=name)
            name = cname[0].target
        nxdomain = not zone.exists(name)
        if nxdomain:
            response.set_rcode(dns.rcode.NXDOMAIN)
        self._add(response.authority, zone, zone.origin, dns.rdatatype.SOA, dnssec)
        self._add_denial(response, zone, name, nxdomain, dnssec)


class _UDPServer(protocol.DatagramProtocol):
    def __init__(self, server):
        self.server = server

    def datagramReceived(self, data, addr):
        answer = self.server.handle(data, "udp")
        if answer is not None:
            self.transport.write(answer, addr)


class _TCPServer(Tracked, Int16StringReceiver):
    def __init__(self, server):
        super().__init__(server)
        self.server = server

    def stringReceived(self, data):
        answer = self.server.handle(data, "tcp")
        if answer is not None:
            self.sendString(answer)


class _TCPFactory(protocol.Factory):
    def __init__(self, server):
        self.server = server

    def buildProtocol(self, addr):
        return _TCPServer(self.server)
