"""The "sasl2" extension: login in one round trip.

SASL2 (XEP-0388) beside RFC 6120 SASL, with Bind 2 (XEP-0386) and inline stream
management, carbons and client state (XEP-0198, XEP-0280, XEP-0352), archive metadata
(XEP-0313) and an unread summary in <bound/>, FAST tokens (XEP-0484, HT-SHA-256-*),
named app passwords (listed and revoked with XEP-0050 commands and summitctl), TOTP
second factor (XEP-0400, RFC 6238) and SCRAM upgrade tasks (XEP-0480). One concept per
module: ``authenticate`` (the exchange), ``credentials``, ``fast``, ``mfa``, ``upgrade``,
``bind2``, ``unread``, ``adhoc`` (the commands), ``schema`` (the tables).

Options, under ``[extensions.sasl2]``::

    fast_token_lifetime = 1209600   # seconds a FAST token lives (rotated at half-life)
    max_app_passwords = 20          # per account
    revocation_check_interval = 60  # seconds: sessions of app passwords summitctl revoked end
    totp_key = ""                   # base64 of 32 random bytes: enables TOTP (XEP-0400)
    totp_issuer = ""                # the issuer in otpauth URIs (default: the domain)
    app_passwords_skip_mfa = true   # app password logins need no TOTP code
    fast_skips_mfa = true           # FAST logins need none (false: they fail, credentials-expired)
    mfa_max_failures = 5            # wrong TOTP codes per account ...
    mfa_failure_window = 300        # ... per this many seconds
    unread_per_conversation = 1000  # unread messages counted per conversation (then saturates)
    unread_conversations = 100      # conversations listed in the unread summary
"""

from dataclasses import dataclass, fields

from summitd.config import ConfigError
from summitd.core import events
from summitd.extensions.base import Extension
from summitd.plugins.pubsub import IPersonalEventing
from summitd.plugins.sasl2 import schema
from summitd.plugins.sasl2.adhoc import AdHocCommands
from summitd.plugins.sasl2.authenticate import Sasl2
from summitd.plugins.sasl2.bind2 import SessionSetup
from summitd.plugins.sasl2.credentials import AppPasswords, AppPasswordStore
from summitd.plugins.sasl2.fast import Fast, TokenStore
from summitd.plugins.sasl2.mfa import Totp, parse_key
from summitd.plugins.sasl2.unread import UnreadTracker
from summitd.plugins.sasl2.upgrade import Upgrades


@dataclass(frozen=True)
class Sasl2Config:
    fast_token_lifetime: int = 14 * 86400
    max_app_passwords: int = 20
    revocation_check_interval: float = 60
    totp_key: bytes | None = None
    totp_issuer: str = ""
    app_passwords_skip_mfa: bool = True
    fast_skips_mfa: bool = True
    mfa_max_failures: int = 5
    mfa_failure_window: float = 300
    unread_per_conversation: int = 1000
    unread_conversations: int = 100


def _positive_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0


_CHECKS = {
    "fast_token_lifetime": (_positive_int, "must be a positive number of seconds"),
    "max_app_passwords": (_positive_int, "must be a positive integer"),
    "revocation_check_interval": (_number, "must be a number of seconds >= 0 (0: no checks)"),
    "totp_issuer": (lambda v: isinstance(v, str), "must be a string"),
    "app_passwords_skip_mfa": (lambda v: isinstance(v, bool), "must be true or false"),
    "fast_skips_mfa": (lambda v: isinstance(v, bool), "must be true or false"),
    "mfa_max_failures": (_positive_int, "must be a positive integer"),
    "mfa_failure_window": (lambda v: _number(v) and v > 0, "must be a positive number of seconds"),
    "unread_per_conversation": (_positive_int, "must be a positive integer"),
    "unread_conversations": (_positive_int, "must be a positive integer"),
}


def parse_config(raw, path):
    """Validate [extensions.sasl2] (see the module doc)."""
    errors, values = [], {}
    known = {f.name for f in fields(Sasl2Config)}
    for key, value in raw.items():
        if key not in known:
            errors.append((f"{path}.{key}", "unknown option"))
        elif key == "totp_key":
            try:
                values[key] = parse_key(value) if value else None
            except (AttributeError, ValueError):
                errors.append((f"{path}.{key}", "must be 32 random bytes in base64 (openssl rand -base64 32)"))
        elif not _CHECKS[key][0](value):
            errors.append((f"{path}.{key}", f"{_CHECKS[key][1]} (got {value!r})"))
        else:
            values[key] = value
    if errors:
        raise ConfigError(errors)
    return Sasl2Config(**values)


class Sasl2Extension(Extension):
    """Wires the parts into one SASL2 exchange."""

    def __init__(self, context, config):
        super().__init__(context)
        self.config = config
        self.app_passwords = AppPasswords(
            context, AppPasswordStore(context.database, context.clock, config.max_app_passwords),
            config.revocation_check_interval)
        self.fast = Fast(context, TokenStore(context.database), config.fast_token_lifetime)
        self.unread = UnreadTracker(context, config.unread_per_conversation, config.unread_conversations,
                                    IPersonalEventing)
        self.core = Sasl2(context, ())
        self.totp = Totp(context, config, self.core) if config.totp_key is not None else None
        # The order matters: mechanisms first; tasks: the second factor before upgrades
        # (XEP-0480); finishing: the session (Bind 2) last.
        self.core.parts = [part for part in (
            self.app_passwords, self.fast, self.totp, Upgrades(context),
            SessionSetup(context, self.core, self.unread)) if part is not None]
        commands = AdHocCommands(context)
        for part in (self.app_passwords, self.totp):
            for command in part.commands() if part is not None else ():
                commands.add(command)
        context.hook(events.ACCOUNT_DELETING, lambda jid, txn: schema.delete_account(txn, jid.host, jid.user))

    def start(self):
        d = self.context.migrate(schema.COMPONENT, schema.MIGRATIONS)
        if self.totp is not None:
            d.addCallback(lambda _: self.totp.start())
        return d

    def stop(self):
        return self.unread.flush()


def build(context, config):
    return Sasl2Extension(context, config or Sasl2Config())
