"""summitctl app-password add|list|revoke JID [NAME]: app passwords from the command line.

The same operations users run with ad-hoc commands (``summitd.plugins.sasl2.credentials``),
for administrators, on the server summitctl opens (its synchronous database). The sasl2
extension must be enabled in the configuration. Revoking from here deletes the keys and
the FAST tokens at once; a running server closes the sessions the app password opened at
its next revocation check (``revocation_check_interval``).

Wiring in ``summitd/ctl.py``::

    from summitd import ctl_credentials
    COMMANDS["app-password"] = lambda config, args: ctl_credentials.run(_open_server(config), args)
    ctl_credentials.add_parser(sub)          # in build_parser()
"""

from summitd.accounts import AccountError
from summitd.plugins.sasl2.authenticate import format_time
from summitd.plugins.sasl2.credentials import AppPasswordError, check_name
from summitd.synchronous import result_of


def add_parser(subparsers):
    p = subparsers.add_parser("app-password", help="add, list or revoke named app passwords (SASL2)")
    p.add_argument("action", choices=("add", "list", "revoke"))
    p.add_argument("jid")
    p.add_argument("name", nargs="?", help="the app password's name (add, revoke)")
    return p


def _app_passwords(server, jid_text):
    loaded = server.extensions.loaded.get("sasl2")
    if loaded is None:
        raise AccountError("app passwords need the sasl2 extension: enable it in [extensions]")
    jid = server.account_manager.account_jid(jid_text)
    if not result_of(server.account_manager.exists(jid)):
        raise AccountError(f"no account {jid.userhost()}")
    return loaded[0].app_passwords, jid


def add(server, jid_text, name):
    """Create an app password; returns it (shown once)."""
    app_passwords, jid = _app_passwords(server, jid_text)
    try:
        return result_of(app_passwords.create(jid, name))
    except AppPasswordError as e:
        raise AccountError(str(e)) from None


def list_passwords(server, jid_text):
    """[(name, created, last used or None)] of an account, by name."""
    app_passwords, jid = _app_passwords(server, jid_text)
    return result_of(app_passwords.store.list(jid.host, jid.user))


def revoke(server, jid_text, name):
    """Revoke by name; False when the account has none of that name."""
    app_passwords, jid = _app_passwords(server, jid_text)
    return result_of(app_passwords.revoke(jid, check_name(name)))


def run(server, args, out=print):
    """Carry out ``summitctl app-password ...`` (argparse namespace ``args``)."""
    if args.action != "list" and not args.name:
        raise AccountError(f"app-password {args.action} needs a NAME")
    if args.action == "add":
        out(f"app password {args.name!r} for {args.jid}: {add(server, args.jid, args.name)}")
        out("it is shown only now")
    elif args.action == "list":
        rows = list_passwords(server, args.jid)
        for name, created, used in rows:
            out(f"{name}\tcreated {format_time(created)}\tlast used "
                f"{'never' if used is None else format_time(used)}")
        if not rows:
            out(f"{args.jid} has no app passwords")
    elif revoke(server, args.jid, args.name):
        out(f"revoked {args.name!r} of {args.jid}")
    else:
        raise AccountError(f"{args.jid} has no app password {args.name!r}")
