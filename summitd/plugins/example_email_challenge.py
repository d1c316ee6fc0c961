"""An example third-party registration challenge: proving an email address (XEP-0389 §2).

It shows how an extension adds a step to registration flows: implement
``IChallenge``, register it with the ``IChallenges`` provider of the "registration"
extension (list "registration" in ``requires``), and let a domain name it in its
``challenges`` option, e.g. ``challenges = ["email", "form"]``. The step has two rounds
of the same challenge type: a form asking for an address, then (after a code was sent
there) a form asking for the code. A wrong code gets ``not-acceptable``.

Sending mail is not this example's business: ``send`` is a function(address, code)
that a real extension would point at an SMTP client; the default keeps the last
messages in ``outbox`` (and tests read the code from there). The step does not fit in
XEP-0077, so domains using it offer XEP-0389 only.

Options: ``allowed_domains`` (email domains accepted; empty: any) and ``code_length``.
"""

import secrets
from collections import deque

from zope.interface import implementer

from summitd.config import ConfigError
from summitd.core.errors import StanzaError
from summitd.extensions.base import Extension
from summitd.plugins.registration import forms
from summitd.plugins.registration.challenges import IChallenge, IChallenges
from summitd.plugins.registration.policy import check_options

TYPE = "urn:summitd:example:email:0"


def parse_config(raw, path):
    spec = {"allowed_domains": (list, [], None, "must be a list of email domains"),
            "code_length": (int, 6, lambda v: 4 <= v <= 12, "must be an integer from 4 to 12")}
    values, errors = check_options(raw, path, spec)
    if errors:
        raise ConfigError(errors)
    return values


@implementer(IChallenge)
class EmailChallenge:
    name = "email"
    type = TYPE
    provides_account = False
    legacy_form_type = None

    def __init__(self, options, send):
        self.options = options
        self.send = send

    def issue(self, attempt):
        attempt.state[self.name] = {"code": None, "tries": 0}
        x = forms.form(TYPE, title="Your email address", instructions="We send a code to this address.")
        forms.add_field(x, "email", type="text-single", label="Email address", required=True)
        return x

    def verify(self, attempt, payload):
        state = attempt.state[self.name]
        fields = forms.read(forms.find_form(payload), TYPE)
        if state["code"] is None:
            address = forms.value(fields, "email").strip()
            local, _, domain = address.rpartition("@")
            allowed = self.options["allowed_domains"]
            if not local or "." not in domain or (allowed and domain.lower() not in allowed):
                raise StanzaError("not-acceptable", "that email address is not accepted here")
            state["code"] = "".join(secrets.choice("0123456789") for _ in range(self.options["code_length"]))
            self.send(address, state["code"])
            x = forms.form(TYPE, title="Check your email", instructions=f"Enter the code sent to {address}.")
            forms.add_field(x, "code", type="text-single", label="Code", required=True)
            return x                                    # another round of this challenge
        if not secrets.compare_digest(forms.value(fields, "code").strip(), state["code"]):
            raise StanzaError("not-acceptable", "wrong email confirmation code")
        return None


class ExampleEmailChallenge(Extension):
    def __init__(self, context, options):
        super().__init__(context)
        self.outbox = deque(maxlen=100)
        self.challenge = EmailChallenge(options, lambda address, code: self.outbox.append((address, code)))
        self._unregister = None

    def start(self):
        self._unregister = self.context.need(IChallenges).register(self.challenge)

    def stop(self):
        if self._unregister is not None:
            self._unregister()


def build(context, config):
    return ExampleEmailChallenge(context, config or parse_config({}, "extensions.example_email_challenge"))
