"""summitctl commands for spam defence: ``invite create|list|revoke`` and ``reports``.

Invitations (XEP-0401) are rows of the "registration" extension (which must be enabled:
its migrations create the table); ``create`` prints the token once (only its hash is
kept) with the XMPP URI to hand to the invitee. ``reports`` lists the spam and abuse
reports (XEP-0377) that users attached to blocks (XEP-0191), as stored by the
"blocking" extension, newest last.

Wiring into summitctl (summitd/ctl.py): call ``add_parsers(sub)`` in ``build_parser``,
add ``COMMANDS`` to its command table (each takes (config, args) like the others) and
catch ``RegistrationCommandError`` beside ``CommandError`` in ``main``. The module also
runs alone: ``python -m summitd.ctl_registration --config F …``.
"""

import argparse
import json
import sys
import time

from summitd.synchronous import result_of


class RegistrationCommandError(Exception):
    """Printed as 'summitctl: <message>' with exit status 1."""


def _server(config):
    from summitd.ctl import _open_server
    return _open_server(config)


def _run(server, description, fn, *args):
    """Run ``fn`` in a transaction; a missing table means its extension is not enabled."""
    try:
        return result_of(server.database.runInteraction(description, fn, *args))
    except Exception as e:
        if "no such table" in str(e) or "does not exist" in str(e):
            raise RegistrationCommandError(f"no {description} here: enable the extension that keeps them "
                                           "(registration for invitations, blocking for reports)") from None
        raise


def _duration(text):
    """'3600', '90m', '12h', '7d' or '0' (never) in seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    factor = units.get(text[-1:], None)
    number = text[:-1] if factor else text
    try:
        value = float(number) * (factor or 1)
    except ValueError:
        raise RegistrationCommandError(f"not a duration: {text!r} (e.g. 3600, 90m, 12h, 7d)") from None
    if value < 0:
        raise RegistrationCommandError("a duration cannot be negative")
    return value


# -- the functions (also used by tests) ---------------------------------------------------------

def create_invitation(server, host, username=None, uses=1, lifetime=None, inviter=None, note=None):
    """A new invitation; returns {"id", "token", "uri", "expires"}."""
    from summitd.core.jid import InvalidJID, parse_jid, prepare_localpart
    from summitd.plugins.registration.invites import create_invite, invite_uri
    if host not in server.router.hosts:
        raise RegistrationCommandError(f"{host} is not a domain of this server")
    if uses < 1:
        raise RegistrationCommandError("an invitation needs at least one use")
    try:
        username = prepare_localpart(username) if username else None
        inviter = parse_jid(inviter).userhost() if inviter else None
    except InvalidJID as e:
        raise RegistrationCommandError(str(e)) from None
    from summitd.plugins.registration import store
    _run(server, "invitations", store.list_invites, host)      # the table exists
    token, invite = result_of(create_invite(server.database, time.time(), host, username=username,
                                            inviter=inviter, uses=uses, lifetime=lifetime, note=note))
    return {"id": invite.id, "token": token, "uri": invite_uri(invite, token), "expires": invite.expires}


def list_invitations(server, host=None):
    """Every invitation as a dict (no tokens: they are not stored)."""
    from summitd.plugins.registration import store
    now = time.time()
    return [{"id": i.id, "host": i.host, "username": i.username, "inviter": i.inviter, "uses": i.uses,
             "max_uses": i.max_uses, "created": i.created, "expires": i.expires, "state": i.state(now),
             "note": i.note}
            for i in _run(server, "invitations", store.list_invites, host)]


def revoke_invitation(server, invite_id):
    from summitd.plugins.registration import store
    if not _run(server, "invitations", store.revoke, invite_id):
        raise RegistrationCommandError(f"no usable invitation {invite_id}")


def _reports(txn, host):
    where, args = ("WHERE host = ?", (host,)) if host else ("", ())
    return txn.execute(
        "SELECT host, username, reported_jid, reason, report_text, stanza_ids, reported_at, report_count"
        f" FROM blocking_reports {where} ORDER BY reported_at, host, username, reported_jid", args).fetchall()


def list_reports(server, host=None):
    """The XEP-0377 reports of every user (of ``host``), oldest first."""
    return [{"reporter": f"{user}@{h}", "reported": jid, "reason": reason, "text": text,
             "stanza_ids": json.loads(ids), "reported_at": at, "count": count}
            for h, user, jid, reason, text, ids, at, count in _run(server, "spam reports", _reports, host)]


# -- the commands ---------------------------------------------------------------------------------

def _when(seconds):
    return "never" if seconds is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def cmd_invite(config, args):
    server = _server(config)
    if args.invite_command == "create":
        lifetime = _duration(args.expires) if args.expires else None
        made = create_invitation(server, args.domain, args.username, args.uses, lifetime, args.inviter, args.note)
        if args.json:
            print(json.dumps(made))
        else:
            print(f"invitation {made['id']} (expires {_when(made['expires'])})\n"
                  f"token: {made['token']}\nuri:   {made['uri']}")
    elif args.invite_command == "list":
        invites = list_invitations(server, args.domain)
        if args.json:
            print(json.dumps(invites))
        for i in invites if not args.json else ():
            who = f" for {i['username']}" if i["username"] else ""
            by = f" from {i['inviter']}" if i["inviter"] else ""
            print(f"{i['id']}  {i['host']}{who}{by}  {i['uses']}/{i['max_uses']} used  "
                  f"expires {_when(i['expires'])}  {i['state']}")
    else:
        revoke_invitation(server, args.id)
        print(f"revoked {args.id}")


def cmd_reports(config, args):
    reports = list_reports(_server(config), args.domain)
    if args.json:
        print(json.dumps(reports))
        return
    for r in reports:
        text = f": {r['text']}" if r["text"] else ""
        print(f"{r['reported_at']}  {r['reporter']} reported {r['reported']} ({r['reason']}, "
              f"{r['count']}x, {len(r['stanza_ids'])} stanza-id(s)){text}")
    if not reports:
        print("no reports")


COMMANDS = {"invite": cmd_invite, "reports": cmd_reports}


def add_parsers(sub):
    """Add ``invite`` and ``reports`` to summitctl's sub-command parsers."""
    invite = sub.add_parser("invite", help="registration invitations (XEP-0401)")
    isub = invite.add_subparsers(dest="invite_command", required=True)
    p = isub.add_parser("create", help="create an invitation and print its token and URI")
    p.add_argument("--domain", required=True, help="the domain the invitation registers on")
    p.add_argument("--username", help="the username it is for (reserved until it is used up or expires)")
    p.add_argument("--uses", type=int, default=1, help="how many accounts it may create (default 1)")
    p.add_argument("--expires", help="lifetime: seconds, or 90m, 12h, 7d (default: never)")
    p.add_argument("--inviter", help="a JID the new accounts get a mutual subscription with")
    p.add_argument("--note", help="a note for operators")
    p.add_argument("--json", action="store_true")
    p = isub.add_parser("list", help="list invitations")
    p.add_argument("--domain")
    p.add_argument("--json", action="store_true")
    isub.add_parser("revoke", help="revoke an invitation").add_argument("id")
    p = sub.add_parser("reports", help="list spam and abuse reports (XEP-0377)")
    p.add_argument("--domain", help="only reports by users of this domain")
    p.add_argument("--json", action="store_true")


def main(argv=None):
    from summitd.config import ConfigError, load_config
    parser = argparse.ArgumentParser(prog="summitctl", description="Invitations and spam reports.")
    parser.add_argument("--config", default="etc/summitd.toml")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        COMMANDS[args.command](load_config(args.config), args)
    except ConfigError as e:
        print(f"summitctl: {args.config} is invalid: {e}", file=sys.stderr)
        return 1
    except RegistrationCommandError as e:
        print(f"summitctl: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
