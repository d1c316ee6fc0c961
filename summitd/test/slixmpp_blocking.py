"""A slixmpp scenario for the blocking command (XEP-0191); run by test_integration_blocking.

It adds the ``blocking`` scenario to ``slixmpp_scenario`` (same arguments, same JSON
report, same bounds and watchdog) and runs its main():

alice and bob log in and send initial presence; alice fetches her blocklist
(so she gets pushes) and blocks bob with slixmpp's xep_0191 plugin. bob's chat
message to alice must come back as an error of condition service-unavailable and
alice must receive nothing; alice's message to bob must be refused with
not-acceptable and <blocked xmlns='urn:xmpp:blocking:errors'/>. After alice
unblocks bob, his next message reaches her.
"""

import asyncio
import os
import sys
import time
import uuid

import slixmpp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import slixmpp_scenario as base  # noqa: E402  (the shared client harness)

NS_BLOCKING_ERRORS = "urn:xmpp:blocking:errors"


def remaining(deadline):
    return max(deadline - time.monotonic(), 0.1)


class Inbox:
    """Futures for the next stanza matching a test, fed by slixmpp events."""

    def __init__(self, xmpp, event):
        self.waiting = []
        self.seen = []
        xmpp.add_event_handler(event, self._received)

    def _received(self, stanza):
        self.seen.append(stanza)
        for test, future in list(self.waiting):
            if not future.done() and test(stanza):
                future.set_result(stanza)
                self.waiting.remove((test, future))

    def wait_for(self, test, deadline):
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((test, future))
        return asyncio.wait_for(future, remaining(deadline))


async def sync(client, deadline):
    """A ping round trip: the server answers in order, so whatever it routed to this
    client before has arrived once the pong is in."""
    await client.xmpp.plugin["xep_0199"].ping(timeout=remaining(deadline))


async def scenario_blocking(args, result, reasons, deadline):
    alice = base.Client("alice", args.alice, args.alice_password, args)
    bob = base.Client("bob", args.bob, args.bob_password, args)
    clients = [alice, bob]
    alice.xmpp.register_plugin("xep_0191")
    alice_messages = Inbox(alice.xmpp, "message")
    alice_errors = Inbox(alice.xmpp, "message_error")
    bob_messages = Inbox(bob.xmpp, "message")
    bob_errors = Inbox(bob.xmpp, "message_error")
    pushes = Inbox(alice.xmpp, "blocked")
    alice_bare, bob_bare = slixmpp.JID(args.alice).bare, slixmpp.JID(args.bob).bare
    token = uuid.uuid4().hex
    try:
        await base.start_sessions(clients, deadline)
        for client in clients:
            base.check_session(client, args, reasons)
            client.xmpp.send_presence()
        for client in clients:
            await sync(client, deadline)
        blocking = alice.xmpp.plugin["xep_0191"]
        result["initial_blocklist"] = sorted(str(j) for j in await blocking.get_blocked_jids(timeout=remaining(deadline)))
        pushed = pushes.wait_for(lambda iq: True, deadline)
        await blocking.block(bob_bare, timeout=remaining(deadline))
        push = await pushed
        result["push"] = [str(item["jid"]) for item in push["block"]]
        result["blocklist"] = sorted(str(j) for j in await blocking.get_blocked_jids(timeout=remaining(deadline)))

        refused_id = f"refused-{token}"
        refused = bob_errors.wait_for(lambda m: m["id"] == refused_id, deadline)
        message = bob.xmpp.make_message(mto=alice_bare, mbody=f"blocked ({token})", mtype="chat")
        message["id"] = refused_id
        message.send()
        error = await refused
        result["bob_error"] = {"condition": error["error"]["condition"], "type": error["error"]["type"],
                               "from": error["from"].full}
        await sync(alice, deadline)
        result["alice_received_while_blocked"] = [m["body"] for m in alice_messages.seen]

        outbound_id = f"outbound-{token}"
        outbound = alice_errors.wait_for(lambda m: m["id"] == outbound_id, deadline)
        message = alice.xmpp.make_message(mto=bob_bare, mbody="hi bob", mtype="chat")
        message["id"] = outbound_id
        message.send()
        error = await outbound
        result["alice_error"] = {
            "condition": error["error"]["condition"],
            "blocked": error["error"].xml.find(f"{{{NS_BLOCKING_ERRORS}}}blocked") is not None}
        await sync(bob, deadline)
        result["bob_received_while_blocked"] = [m["body"] for m in bob_messages.seen]

        await blocking.unblock(bob_bare, timeout=remaining(deadline))
        body = f"unblocked ({token})"
        arrived = alice_messages.wait_for(lambda m: m["body"] == body, deadline)
        bob.xmpp.send_message(mto=alice_bare, mbody=body, mtype="chat")
        got = await arrived
        result["after_unblock"] = {"from": got["from"].full, "body": got["body"]}
        check(result, reasons, alice_bare, bob_bare, bob.info.get("bound_jid"))
    finally:
        result["sessions"] = {c.name: c.info for c in clients}
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


def check(result, reasons, alice_bare, bob_bare, bob_full):
    expected = {
        "initial_blocklist": [],
        "push": [bob_bare],
        "blocklist": [bob_bare],
        "bob_error": {"condition": "service-unavailable", "type": "cancel", "from": alice_bare},
        "alice_received_while_blocked": [],
        "alice_error": {"condition": "not-acceptable", "blocked": True},
        "bob_received_while_blocked": [],
    }
    for key, value in expected.items():
        if result.get(key) != value:
            reasons.append(f"{key}: expected {value!r}, got {result.get(key)!r}")
    if result["after_unblock"]["from"] != bob_full:
        reasons.append(f"after unblock the message came from {result['after_unblock']['from']!r}")


base.SCENARIOS["blocking"] = scenario_blocking

if __name__ == "__main__":
    sys.exit(base.main())
