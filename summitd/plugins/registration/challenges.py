"""Registration challenges: the pluggable steps of an XEP-0389 flow.

A flow is an ordered list of challenges; each issues the payload of a
``<challenge type='...'/>`` and checks the client's ``<response/>``. The built-in ones:

* ``form`` (type jabber:x:data, XEP-0004): the username and password. Every flow
  ends with it unless another step collects them (the signed form does).
* ``proof-of-work`` (type urn:xmpp:captcha): the SHA-256 hashcash of CAPTCHA Forms
  (XEP-0158 §5.2), cost ``pow_bits`` per domain; checking costs one hash.
* ``invitation`` (type urn:xmpp:ibr-token:0): an invitation token (XEP-0401) sent as
  XEP-0445's ``<preauth xmlns='urn:xmpp:pars:0' token='...'/>``; XEP-0401 leaves the
  XEP-0389 way open ("a yet-to-be-defined mechanism"), this is ours.
* ``signed-form`` (type urn:xmpp:xdata:signature:oauth1): a form with the username and
  password signed by a key of the configured set (XEP-0348): the IoT case, where only
  a fleet's devices may register. The server issues a fresh oauth_token and secret per
  attempt and uses its own copies, not the client's (XEP-0348 §6.2); an unknown key,
  a wrong signature, a timestamp outside ``signature_window`` or a nonce seen before
  are each refused with bad-request (§4.1) and a text naming the reason.

Third-party challenges (email, CAPTCHA images ...) implement ``IChallenge`` and register
with the ``IChallenges`` provider of the registration extension; a domain uses them by
name in its ``challenges`` option. ``summitd.plugins.example_email_challenge`` is one.
"""

import secrets
from collections import OrderedDict

from twisted.words.xish import domish
from zope.interface import Attribute, Interface, implementer

from summitd.core.errors import StanzaError
from summitd.plugins.registration import forms, hashcash, signing

NS_CAPTCHA = "urn:xmpp:captcha"
NS_PARS = "urn:xmpp:pars:0"
NS_IBR_TOKEN = "urn:xmpp:ibr-token:0"
NS_SIGNATURE = "urn:xmpp:xdata:signature:oauth1"
NS_IQ_REGISTER = "jabber:iq:register"
MAX_NONCE = 128
MAX_NONCES = 100_000


class IChallenge(Interface):
    """One kind of registration step."""

    name = Attribute("The name a domain's 'challenges' option uses, e.g. 'proof-of-work'.")
    type = Attribute("The XEP-0389 challenge type: the 'type' of <challenge/>.")
    provides_account = Attribute("True when the step collects the username and password.")
    legacy_form_type = Attribute(
        "The FORM_TYPE of its form when the step can run inside XEP-0077 registration (its "
        "form goes in the query, with username and password added unless it has them), or None.")

    def issue(attempt):
        """The payload of the <challenge/>: an Element, or a Deferred of one. Keep what
        verify needs in ``attempt.state[self.name]``."""

    def verify(attempt, payload):
        """Check the answer; ``payload`` is the list of the <response/>'s child elements
        (in XEP-0077: [the submitted form]). Return None when passed, or an Element to ask
        again (another round of the same type), or a Deferred of either. Raise StanzaError
        (condition and a text naming the reason) when it failed."""


class IChallenges(Interface):
    """The registry of challenge kinds (provided by the registration extension)."""

    def register(challenge):
        """Make an IChallenge available by its name; returns a function that removes it."""

    def get(name):
        """The IChallenge of that name, or None."""


class Flow:
    """A way to register offered to clients: an id, a name and its ordered steps."""

    def __init__(self, id, name, steps):
        self.id = id
        self.name = name
        self.steps = tuple(steps)

    def types(self):
        """The distinct challenge types, in order (XEP-0389 lists each type once)."""
        return list(dict.fromkeys(step.type for step in self.steps))


class Attempt:
    """One registration in progress: the flow, where it is, and what it has learnt."""

    def __init__(self, registrar, host, address, flow):
        self.registrar = registrar      # check_account / check_invite / complete
        self.host = host
        self.address = address
        self.flow = flow
        self.step = 0
        self.state = {}                 # challenge name -> its private state
        self.username = None
        self.password = None
        self.invite = None              # the store.Invite the client presented
        self.signed_by = None           # the XEP-0348 key that signed the account form
        self.busy = False               # a response is being checked
        self.timer = None

    @property
    def challenge(self):
        return self.flow.steps[self.step]


def _account_fields(x, attempt):
    """Add the username and password fields (the username fixed by an invitation)."""
    fixed = attempt.invite.username if attempt.invite is not None else None
    forms.add_field(x, "username", fixed, type="text-single", label="Username", required=True)
    forms.add_field(x, "password", type="text-private", label="Password", required=True)
    return x


def _the_form(payload, form_type=None):
    return forms.read(forms.find_form(payload), form_type)


@implementer(IChallenge)
class AccountForm:
    """``form``: username and password in a data form (XEP-0004)."""

    name = "form"
    type = forms.NS_DATA
    provides_account = True
    legacy_form_type = NS_IQ_REGISTER

    def issue(self, attempt):
        x = forms.form(NS_IQ_REGISTER, title=f"Register on {attempt.host}",
                       instructions="Choose a username and a password.")
        return _account_fields(x, attempt)

    def verify(self, attempt, payload):
        fields = _the_form(payload)
        return attempt.registrar.check_account(attempt, forms.value(fields, "username"),
                                               forms.value(fields, "password"))


@implementer(IChallenge)
class ProofOfWork:
    """``proof-of-work``: XEP-0158's SHA-256 hashcash in a CAPTCHA form."""

    name = "proof-of-work"
    type = NS_CAPTCHA
    provides_account = False
    legacy_form_type = NS_CAPTCHA

    def __init__(self, bits_for):
        self._bits_for = bits_for       # host -> difficulty

    def issue(self, attempt):
        label = hashcash.new_label(self._bits_for(attempt.host))
        challenge_id = secrets.token_hex(8)
        attempt.state[self.name] = (challenge_id, label)
        x = forms.form(NS_CAPTCHA, instructions=(
            f"Prove some work: answer a text starting with {attempt.host} whose SHA-256 ends in "
            f"the hexadecimal bits {label}."))
        forms.add_field(x, "from", attempt.host, type="hidden")
        forms.add_field(x, "challenge", challenge_id, type="hidden")
        forms.add_field(x, "SHA-256", type="text-single", label=label, required=True)
        return x

    def verify(self, attempt, payload):
        challenge_id, label = attempt.state[self.name]
        fields = _the_form(payload, NS_CAPTCHA)
        if forms.value(fields, "challenge") != challenge_id:
            raise StanzaError("bad-request", "the form answers another challenge")
        if not hashcash.check(forms.value(fields, "SHA-256"), attempt.host, label):
            raise StanzaError("not-acceptable", (
                f"insufficient proof-of-work: the SHA-256 of an answer starting with {attempt.host} "
                f"must end in the {hashcash.label_bits(label)} bits {label}"))
        return None


@implementer(IChallenge)
class Invitation:
    """``invitation``: an invitation token (XEP-0401, sent the XEP-0445 way)."""

    name = "invitation"
    type = NS_IBR_TOKEN
    provides_account = False
    legacy_form_type = None     # XEP-0077 has the XEP-0445 preauth IQ for it

    def issue(self, attempt):
        return domish.Element((NS_PARS, "preauth"))

    def verify(self, attempt, payload):
        preauth = next((e for e in payload if e.uri == NS_PARS and e.name == "preauth"), None)
        token = preauth.getAttribute("token", "") if preauth is not None else ""
        if not token:
            raise StanzaError("bad-request", "expected <preauth xmlns='urn:xmpp:pars:0' token='...'/>")
        return attempt.registrar.check_invite(attempt, token)


@implementer(IChallenge)
class SignedForm:
    """``signed-form``: the account form signed by a key of the configured set (XEP-0348)."""

    name = "signed-form"
    type = NS_SIGNATURE
    provides_account = True
    legacy_form_type = NS_SIGNATURE

    def __init__(self, keys, window, clock):
        self._keys = keys
        self._window = window
        self._clock = clock
        self._nonces = OrderedDict()    # (consumer key, nonce) -> when it stops mattering

    def issue(self, attempt):
        token, secret = secrets.token_hex(16), secrets.token_hex(16)
        attempt.state[self.name] = (token, secret)
        x = forms.form(NS_SIGNATURE, title=f"Register a device on {attempt.host}",
                       instructions="Sign this form with your fleet's key (XEP-0348).")
        for var, value in (("oauth_version", "1.0"), ("oauth_signature_method", signing.HMAC_SHA1),
                           ("oauth_token", token), ("oauth_token_secret", secret), ("oauth_nonce", ""),
                           ("oauth_timestamp", ""), ("oauth_consumer_key", ""), ("oauth_signature", "")):
            forms.add_field(x, var, value, type="hidden")
        return _account_fields(x, attempt)

    def verify(self, attempt, payload):
        token, secret = attempt.state[self.name]
        fields = _the_form(payload, NS_SIGNATURE)
        key = self._check_parameters(fields, token)
        if not signing.verify(fields, attempt.host, key, secret):
            raise StanzaError("bad-request", f"the form signature is wrong for key {key.name!r}")
        self._remember_nonce(key.name, forms.value(fields, "oauth_nonce"))
        attempt.signed_by = key.name
        return attempt.registrar.check_account(attempt, forms.value(fields, "username"),
                                               forms.value(fields, "password"))

    def _check_parameters(self, fields, token):
        value = forms.value
        if value(fields, "oauth_version") != "1.0":
            raise StanzaError("bad-request", "oauth_version must be 1.0")
        method = value(fields, "oauth_signature_method")
        if method not in (signing.HMAC_SHA1, signing.RSA_SHA1):
            raise StanzaError("bad-request", f"unsupported signature method {method!r} (HMAC-SHA1 or RSA-SHA1)")
        if value(fields, "oauth_token") != token:
            raise StanzaError("bad-request", "the oauth_token is not the one this server issued")
        key = self._keys.get(value(fields, "oauth_consumer_key"))
        if key is None:
            raise StanzaError("bad-request", "unknown signing key (oauth_consumer_key)")
        if key.method != method:
            raise StanzaError("bad-request", f"key {key.name!r} signs with {key.method}, not {method}")
        try:
            stamp = int(value(fields, "oauth_timestamp"))
        except ValueError:
            raise StanzaError("bad-request", "oauth_timestamp must be seconds since 1970") from None
        if abs(stamp - self._clock.seconds()) > self._window:
            raise StanzaError("bad-request", f"oauth_timestamp is more than {int(self._window)} s from now")
        nonce = value(fields, "oauth_nonce")
        if not nonce or len(nonce) > MAX_NONCE:
            raise StanzaError("bad-request", f"oauth_nonce must be 1 to {MAX_NONCE} characters")
        if (key.name, nonce) in self._nonces:
            raise StanzaError("bad-request", "replayed form: this oauth_nonce was used already")
        return key

    def _remember_nonce(self, key_name, nonce):
        """Nonces matter while their timestamps are accepted; older ones are forgotten first.
        (Each attempt also has its own oauth_token, so no form can serve two attempts.)"""
        now = self._clock.seconds()
        self._nonces[(key_name, nonce)] = now + 2 * self._window
        while self._nonces:
            oldest_key, until = next(iter(self._nonces.items()))
            if until > now and len(self._nonces) <= MAX_NONCES:
                break
            del self._nonces[oldest_key]


@implementer(IChallenges)
class ChallengeRegistry:
    def __init__(self):
        self._challenges = {}

    def register(self, challenge):
        if not IChallenge.providedBy(challenge):
            raise TypeError(f"{challenge!r} does not provide IChallenge")
        if challenge.name in self._challenges:
            raise ValueError(f"a challenge named {challenge.name!r} is registered already")
        self._challenges[challenge.name] = challenge
        return lambda: self._challenges.pop(challenge.name, None)

    def get(self, name):
        return self._challenges.get(name)
