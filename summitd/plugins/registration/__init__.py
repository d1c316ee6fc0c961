"""The "registration" extension: creating accounts in-band under a per-domain policy.

Specs: Extensible In-Band Registration (XEP-0389, urn:xmpp:register:0) with pluggable
challenges (challenges.py), legacy In-Band Registration (XEP-0077) where the policy's
checks fit into it (legacy.py), invitations (XEP-0401, ad-hoc commands of XEP-0050)
redeemed with XEP-0445 tokens (invites.py), CAPTCHA Forms' hashcash (XEP-0158) and
signed forms (XEP-0348). Registration inside SASL2 (XEP-0388) is not offered here.

Both protocols run before authentication, on streams whose SASL mechanisms are
offered (after STARTTLS when encryption is required: XEP-0389 §4.1 forbids offering
registration before a security layer; a server configured without
``require_encryption`` gets what it asked for). They reach us as ``NONZA`` events in
the stream's 'connected' state. One account per connection: a second registration
on the same stream is refused (XEP-0077 §3.1 allows that).

This module is the *registrar* both protocols share: the flows each domain offers,
the checks of a username, password and invitation, and the creation of the account
(rate limit per domain, the invitation's use taken atomically and given back if the
account cannot be made, a mutual presence subscription with the inviter when the
invitation names one, XEP-0401 §5.5).

Options ([extensions.registration]; those marked * can be set per domain in
[extensions.registration.domains."<domain>"]):

* ``mode``\\* closed | invite | open (default closed)
* ``challenges``\\* steps of the open flow (default ["proof-of-work"]); built in:
  proof-of-work, signed-form, invitation, form; others come from extensions
* ``legacy``\\* offer XEP-0077 where the flow fits (default true)
* ``pow_bits``\\* hashcash difficulty (default 20)
* ``attempts_per_address``/``attempts_period``\\* (10 per 3600 s),
  ``accounts_per_domain``/``accounts_period``\\* (100 per 3600 s), ``min_password_length``\\* (8)
* ``reserved`` extra reserved usernames; ``admins`` JIDs allowed to create invitations;
  ``user_invites`` every user may create contact invitations (false); ``invite_ttl``
  default invitation lifetime in seconds (7 days; 0: none); ``challenge_timeout`` (45 s,
  below c2s's handshake_timeout);
  ``signature_window`` (300 s); ``signing_keys.<name>`` = {method = "HMAC-SHA1", secret}
  or {method = "RSA-SHA1", public_key | public_key_file}.
"""

import weakref

from twisted.internet import defer

from summitd.accounts import AccountError, AccountExists
from summitd.core import events
from summitd.core.errors import StanzaError
from summitd.core.jid import JID
from summitd.extensions.base import Extension
from summitd.extensions.context import MissingProvider
from summitd.plugins.registration import store
from summitd.plugins.registration.challenges import (
    AccountForm, ChallengeRegistry, Flow, IChallenges, Invitation, ProofOfWork, SignedForm)
from summitd.plugins.registration.policy import CLOSED, OPEN, Policy, parse_config  # noqa: F401

__all__ = ["build", "parse_config", "Registration"]


def _invitation_refused(reason):
    return StanzaError("item-not-found", reason)


class Registration(Extension):
    def __init__(self, context, config):
        super().__init__(context)
        from summitd.plugins.registration.ibr2 import ExtensibleRegistration
        from summitd.plugins.registration.invites import InvitationCommands
        from summitd.plugins.registration.legacy import LegacyRegistration
        self.config = config
        self.policy = Policy(config, context.clock)
        self.challenges = ChallengeRegistry()
        self.account_form = AccountForm()
        for challenge in (self.account_form, Invitation(),
                          ProofOfWork(lambda host: self.policy.for_host(host).pow_bits),
                          SignedForm(config.signing_keys, config.signature_window, context.clock)):
            self.challenges.register(challenge)
        context.provide(IChallenges, self.challenges)
        self.registered = weakref.WeakSet()     # streams that created an account
        self._warned = set()
        self.ibr2 = ExtensibleRegistration(context, self)
        self.legacy = LegacyRegistration(context, self)
        self.commands = InvitationCommands(context, self)
        context.hook(events.ACCOUNT_CREATED, self._account_created)
        context.hook(events.ACCOUNT_DELETING, self._account_deleting)

    @defer.inlineCallbacks
    def start(self):
        yield self.context.migrate(store.COMPONENT, store.MIGRATIONS)
        added = yield self.context.database.runInteraction("registration: skeletons", store.reconcile_skeletons)
        if added:
            self.context.log.info("registration: indexed {count} account name(s)", count=added)

    # -- what is offered -------------------------------------------------------------------

    def offered(self, stream):
        """Registration is negotiated before authentication, where SASL is offered."""
        return (stream.state == "connected" and (stream.secure or not stream.config.require_encryption)
                and self.policy.for_host(stream.host).mode != CLOSED)

    def flows(self, host):
        """The flows of a domain: the open one (its challenges) and the invitation one."""
        policy = self.policy.for_host(host)
        if policy.mode == CLOSED:
            return []
        result = []
        if policy.mode == OPEN:
            steps = self._steps(policy.challenges)
            if steps is not None:
                result.append(Flow("open", f"Register on {host}", steps))
        result.append(Flow("invite", f"Register on {host} with an invitation", self._steps(["invitation"])))
        return result

    def _steps(self, names):
        steps = []
        for name in names:
            challenge = self.challenges.get(name)
            if challenge is None:
                if name not in self._warned:
                    self._warned.add(name)
                    self.context.log.error("registration: no challenge named {name}; its flow is not offered",
                                           name=name)
                return None
            steps.append(challenge)
        if not any(step.provides_account for step in steps):
            steps.append(self.account_form)
        return steps

    # -- the checks the challenges call -----------------------------------------------------

    def check_account(self, attempt, username, password):
        """Check a username and password for ``attempt``; fires None (they are kept in the
        attempt) or fails with the StanzaError naming what is wrong."""
        try:
            name = self.policy.username(username)
            password = self.policy.password(attempt.host, password)
        except StanzaError:
            return defer.fail()
        invite = attempt.invite
        if invite is not None and invite.username and invite.username != name:
            return defer.fail(StanzaError("not-acceptable", f"this invitation is for the username {invite.username!r}"))
        jid = JID.from_prepared(name, attempt.host)
        now = int(self.context.clock.seconds())

        def names(txn):
            return (store.look_alike(txn, attempt.host, name),
                    store.username_promised(txn, attempt.host, name, now, invite.id if invite else None))

        def judged(found):
            similar, promised = found
            if similar is not None:
                raise StanzaError("not-acceptable", f"the username {name!r} is too similar to an existing account")
            if promised:
                raise StanzaError("conflict", f"the username {name!r} is reserved for an invitation")
            attempt.username, attempt.password = name, password

        def checked(exists):
            if exists:
                raise StanzaError("conflict", f"the username {name!r} is taken")
            return self.context.database.runInteraction("registration: check name", names).addCallback(judged)

        return self.context.accounts.exists(jid).addCallback(checked)

    def check_invite(self, attempt, token):
        """Check an invitation token (expiry counts only here, XEP-0445 §4); fires None with
        ``attempt.invite`` set, or fails with item-not-found naming the reason."""
        now = self.context.clock.seconds()

        def judged(invite):
            if invite is None or invite.host != attempt.host:
                raise _invitation_refused("unknown invitation token")
            state = invite.state(now)
            if state != "usable":
                raise _invitation_refused({"revoked": "this invitation was revoked",
                                           "used": "this invitation was used already",
                                           "expired": "this invitation has expired"}[state])
            attempt.invite = invite

        return self.context.database.runInteraction(
            "registration: invitation", store.invite_by_token, token).addCallback(judged)

    # -- creating the account --------------------------------------------------------------

    @defer.inlineCallbacks
    def complete(self, attempt, stream):
        """Create the account of a finished attempt; fires with its JID."""
        if stream in self.registered:
            raise StanzaError("not-acceptable", "an account was registered on this connection already")
        self.policy.account_allowed(attempt.host)
        invite = attempt.invite
        database = self.context.database
        if invite is not None and not (yield database.runInteraction("registration: use invitation",
                                                                     store.take_use, invite.id)):
            raise _invitation_refused("this invitation was used already")
        try:
            jid = yield self.context.accounts.create(f"{attempt.username}@{attempt.host}", attempt.password)
        except (AccountExists, AccountError) as e:
            if invite is not None:
                yield database.runInteraction("registration: give invitation back", store.give_back, invite.id)
            if isinstance(e, AccountExists):
                raise StanzaError("conflict", f"the username {attempt.username!r} is taken") from None
            raise StanzaError("not-acceptable", str(e)) from None
        self.registered.add(stream)
        how = attempt.flow.id if attempt.flow is not None else "legacy"
        detail = f"invitation {invite.id}" if invite else (f"key {attempt.signed_by}" if attempt.signed_by else "")
        self.context.log.info("registration: {jid} registered from {address} ({how}{detail})",
                              jid=jid.userhost(), address=attempt.address, how=how,
                              detail=f", {detail}" if detail else "")
        if invite is not None and invite.inviter:
            self._subscribe(jid, invite.inviter)
        return jid

    def _subscribe(self, jid, inviter_text):
        """XEP-0401 §5.5: the new account and the inviter see each other (roster pushes)."""
        from summitd.core.jid import parse_jid
        from summitd.plugins.roster_store import IRoster, RosterItem
        try:
            roster = self.context.need(IRoster)
        except MissingProvider:
            return
        inviter = parse_jid(inviter_text)

        def mutual(contact):
            def change(before):
                return RosterItem(contact=contact.full(), name=before.name if before else "",
                                  groups=before.groups if before else (), subscription="both")
            return change

        for user, contact in ((jid, inviter), (inviter, jid)):
            d = roster.update(user, contact, mutual(contact))
            d.addCallback(roster.push)
            d.addErrback(lambda f: self.context.log.failure("registration: subscribing to the inviter failed", f))

    # -- accounts ----------------------------------------------------------------------------

    def _account_created(self, jid):
        d = self.context.database.runInteraction("registration: skeleton", store.add_skeleton, jid.host, jid.user)
        d.addErrback(lambda f: self.context.log.failure("registration: indexing {jid} failed", f, jid=jid.full()))

    def _account_deleting(self, jid, txn):
        store.delete_skeleton(txn, jid.host, jid.user)


def build(context, config):
    from summitd.plugins.registration.policy import RegistrationConfig
    return Registration(context, config or RegistrationConfig())
