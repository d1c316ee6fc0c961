"""Spam defence, bundled with summitd: registration policies with IBR 2.0 and invitations,
challenge-response for strangers, message rate limits, and an example third-party
registration challenge.

Kept light (imported at every plugin scan): the real modules load only when enabled.
"""

from summitd.extensions.dropin import ExtensionFactory

registration = ExtensionFactory(
    "registration",
    "In-band registration by domain policy: XEP-0389 challenges, XEP-0077, invitations (XEP-0401/0445).",
    "summitd.plugins.registration")
stranger_challenge = ExtensionFactory(
    "stranger_challenge",
    "Messages from strangers are held until the sender answers a challenge (XEP-0158).",
    "summitd.plugins.stranger_challenge", requires=("roster",))
abuse_limits = ExtensionFactory(
    "abuse_limits", "Per-account and per-remote-domain message rate limits; blocked domains.",
    "summitd.plugins.abuse_limits")
example_email_challenge = ExtensionFactory(
    "example_email_challenge", "An example third-party registration challenge: a code sent by email.",
    "summitd.plugins.example_email_challenge", requires=("registration",))
