"""A slixmpp client scenario against a running summitd; run by test_integration_slixmpp.

It runs in its own process because slixmpp is asyncio and trial runs Twisted's
reactor. It prints one JSON object on its last stdout line and exits 0 when
every check passed, 1 (with "ok": false and the reasons) otherwise, 2 on bad
arguments. The whole run is bounded by --timeout; a watchdog alarm ends the
process should the event loop itself get stuck.

Scenarios:

``message``: alice and bob log in (forced SASL mechanism, TLS checked), both send
  initial presence, bob sends a chat message to alice's *bare* JID, alice must
  receive it with the right body and bob's full JID as 'from'.
``ping``: alice logs in and pings the server (XEP-0199).

``--tls starttls`` connects in plain text and upgrades with STARTTLS;
``--tls direct`` is direct TLS (XEP-0368). Certificate checks: against
``--cafile`` when given (with host-name check), else disabled, which is only
acceptable for this loopback test with its self-signed certificate.
"""

import argparse
import asyncio
import json
import logging
import os
import signal
import ssl
import sys
import time
import uuid

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout


class ScenarioFailed(Exception):
    pass


def make_ssl_context(cafile):
    if cafile:
        context = ssl.create_default_context(cafile=cafile)
        context.check_hostname = True
        context.verify_mode = ssl.CERT_REQUIRED
    else:
        # Loopback test against a freshly generated self-signed certificate only.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class Client:
    """One slixmpp ClientXMPP plus what the scenario records about it."""

    def __init__(self, name, jid, password, args):
        self.name = name
        self.args = args
        self.xmpp = slixmpp.ClientXMPP(jid, password, sasl_mech=args.mechanism,
                                       ssl_context=make_ssl_context(args.cafile))
        # Allow only the forced mechanism (sasl_mech sets use_mech; use_mechs closes the set).
        self.xmpp.plugin["feature_mechanisms"].use_mechs = {args.mechanism}
        self.xmpp.register_plugin("xep_0199")
        if args.tls == "direct":
            self.xmpp.enable_direct_tls, self.xmpp.enable_starttls = True, False
        else:
            self.xmpp.enable_direct_tls, self.xmpp.enable_starttls = False, True
        self.xmpp.enable_plaintext = False
        self.xmpp.use_ipv6 = False
        self.xmpp.use_aiodns = False
        self.xmpp.reconnect_max_attempts = 0
        loop = asyncio.get_running_loop()
        self.session_started = loop.create_future()
        self.disconnected = loop.create_future()
        self.tls_seen = False
        self.mechanism = None
        self.info = {"jid": jid}
        self.xmpp.add_event_handler("tls_success", self._on_tls)
        self.xmpp.add_event_handler("auth_success", self._on_auth_success)
        self.xmpp.add_event_handler("failed_auth", self._on_failure("SASL authentication failed"))
        self.xmpp.add_event_handler("failed_all_auth", self._on_failure("no usable SASL mechanism"))
        self.xmpp.add_event_handler("no_auth", self._on_failure("no usable SASL mechanism"))
        self.xmpp.add_event_handler("ssl_invalid_chain", self._on_failure("invalid certificate chain"))
        self.xmpp.add_event_handler("stream_error", self._on_stream_error)
        self.xmpp.add_event_handler("connection_failed", self._on_connection_failed)
        self.xmpp.add_event_handler("session_start", self._on_session_start)
        self.xmpp.add_event_handler("disconnected", self._on_disconnected)

    def _fail(self, reason):
        if not self.session_started.done():
            self.session_started.set_exception(ScenarioFailed(f"{self.name}: {reason}"))

    def _on_failure(self, reason):
        return lambda *_: self._fail(reason)

    def _on_stream_error(self, error):
        self._fail(f"stream error {error['condition']}: {error['text']}")

    def _on_connection_failed(self, error):
        self._fail(f"connection failed: {error}")

    def _on_tls(self, *_):
        self.tls_seen = True

    def _on_auth_success(self, *_):
        mech = self.xmpp.plugin["feature_mechanisms"].mech
        self.mechanism = getattr(mech, "name", None)

    def _on_disconnected(self, reason=None):
        if not self.disconnected.done():
            self.disconnected.set_result(reason)
        self._fail(f"disconnected before the session started ({reason})")

    async def _on_session_start(self, *_):
        sock = self.xmpp.socket
        tls_object = sock if isinstance(sock, (ssl.SSLObject, ssl.SSLSocket)) else None
        self.info.update({
            "bound_jid": self.xmpp.boundjid.full,
            "mechanism": self.mechanism,
            "tls_event": self.tls_seen,
            "tls_version": tls_object.version() if tls_object is not None else None,
            "cipher": tls_object.cipher()[0] if tls_object is not None else None,
            "starttls_negotiated": "starttls" in self.xmpp.features,
        })
        if not self.session_started.done():
            self.session_started.set_result(None)

    def connect(self):
        self.xmpp.connect(self.args.host, self.args.port)

    async def close(self):
        if self.xmpp.transport is None or self.disconnected.done():
            return
        self.xmpp.disconnect(wait=1.0)
        try:
            await asyncio.wait_for(asyncio.shield(self.disconnected), 3)
        except asyncio.TimeoutError:
            self.xmpp.abort()


def check_session(client, args, reasons):
    info = client.info
    if info.get("mechanism") != args.mechanism:
        reasons.append(f"{client.name}: SASL mechanism used was {info.get('mechanism')!r}, "
                       f"not {args.mechanism}")
    if not info.get("tls_event") or not info.get("tls_version"):
        reasons.append(f"{client.name}: TLS was not active")
    if args.tls == "starttls" and not info.get("starttls_negotiated"):
        reasons.append(f"{client.name}: STARTTLS was not negotiated")
    if args.tls == "direct" and info.get("starttls_negotiated"):
        reasons.append(f"{client.name}: STARTTLS used on a direct TLS connection")
    bound = info.get("bound_jid") or ""
    if slixmpp.JID(bound).bare != slixmpp.JID(info["jid"]).bare or not slixmpp.JID(bound).resource:
        reasons.append(f"{client.name}: bound JID {bound!r} is not a full JID of {info['jid']}")


async def start_sessions(clients, deadline):
    for client in clients:
        client.connect()
    await asyncio.wait_for(asyncio.gather(*(c.session_started for c in clients)),
                           max(deadline - time.monotonic(), 0.1))


async def scenario_message(args, result, reasons, deadline):
    alice = Client("alice", args.alice, args.alice_password, args)
    bob = Client("bob", args.bob, args.bob_password, args)
    clients = [alice, bob]
    received = asyncio.get_running_loop().create_future()
    token = uuid.uuid4().hex
    body = f"hello alice, this is bob ({token}) \u2603 <&>"

    def on_message(msg):
        if msg["body"] == body and not received.done():
            received.set_result({"from": msg["from"].full, "to": msg["to"].full,
                                 "type": msg["type"], "body": msg["body"]})

    alice.xmpp.add_event_handler("message", on_message)
    try:
        await start_sessions(clients, deadline)
        for client in clients:
            check_session(client, args, reasons)
        for client in clients:
            client.xmpp.send_presence()
        # The server handles each stream in order: once alice's ping comes back, her
        # initial presence has been processed and she is an available resource.
        for client in clients:
            await client.xmpp.plugin["xep_0199"].ping(timeout=max(deadline - time.monotonic(), 0.1))
        bob.xmpp.send_message(mto=slixmpp.JID(args.alice).bare, mbody=body, mtype="chat")
        got = await asyncio.wait_for(received, max(deadline - time.monotonic(), 0.1))
        result["message"] = got
        if got["from"] != bob.info["bound_jid"]:
            reasons.append(f"message 'from' is {got['from']!r}, expected {bob.info['bound_jid']!r}")
        if slixmpp.JID(got["to"]).bare != slixmpp.JID(args.alice).bare:
            reasons.append(f"message 'to' is {got['to']!r}")
        if got["type"] != "chat":
            reasons.append(f"message type is {got['type']!r}")
    finally:
        result["sessions"] = {c.name: c.info for c in clients}
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


async def scenario_ping(args, result, reasons, deadline):
    alice = Client("alice", args.alice, args.alice_password, args)
    try:
        await start_sessions([alice], deadline)
        check_session(alice, args, reasons)
        server = slixmpp.JID(args.alice).domain
        rtt = await alice.xmpp.plugin["xep_0199"].ping(server, timeout=max(deadline - time.monotonic(), 0.1))
        result["ping"] = {"to": server, "rtt": rtt}
    finally:
        result["sessions"] = {"alice": alice.info}
        await alice.close()


SCENARIOS = {"message": scenario_message, "ping": scenario_ping}


async def main_async(args):
    result = {"scenario": args.scenario, "tls": args.tls, "ok": False}
    reasons = []
    deadline = time.monotonic() + args.timeout
    started = time.monotonic()
    try:
        await asyncio.wait_for(SCENARIOS[args.scenario](args, result, reasons, deadline),
                               args.timeout + 5)
    except (asyncio.TimeoutError, TimeoutError):
        reasons.append(f"timed out after {args.timeout} s")
    except IqError as e:
        reasons.append(f"IQ error: {e.iq['error']['condition']}")
    except IqTimeout:
        reasons.append("IQ timed out")
    except ScenarioFailed as e:
        reasons.append(str(e))
    except Exception as e:  # report, don't hide: the test shows the reason
        reasons.append(f"{type(e).__name__}: {e}")
    result["elapsed"] = round(time.monotonic() - started, 3)
    result["reasons"] = reasons
    result["ok"] = not reasons
    return result


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--tls", choices=("starttls", "direct"), default="starttls")
    p.add_argument("--scenario", choices=sorted(SCENARIOS), default="message")
    p.add_argument("--mechanism", default="SCRAM-SHA-256")
    p.add_argument("--alice", default="alice@localhost")
    p.add_argument("--bob", default="bob@localhost")
    p.add_argument("--cafile", help="verify the server certificate against this file")
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--verbose", action="store_true", help="slixmpp debug logging on stderr")
    args = p.parse_args(argv)
    # Passwords come from the environment, not the command line (visible in ps).
    args.alice_password = os.environ.get("SCENARIO_ALICE_PASSWORD", "")
    args.bob_password = os.environ.get("SCENARIO_BOB_PASSWORD", "")
    if not args.alice_password or (args.scenario == "message" and not args.bob_password):
        p.error("set SCENARIO_ALICE_PASSWORD (and SCENARIO_BOB_PASSWORD for 'message')")
    return args


def _watchdog(*_):
    print(json.dumps({"ok": False, "reasons": ["watchdog: the event loop hung"]}), flush=True)
    os._exit(3)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.ERROR, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # Watchdog: should the loop hang in something wait_for cannot cancel.
    signal.signal(signal.SIGALRM, _watchdog)
    signal.alarm(int(args.timeout) + 15)
    result = asyncio.run(main_async(args))
    signal.alarm(0)
    print(json.dumps(result, sort_keys=True))
    sys.stdout.flush()
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
