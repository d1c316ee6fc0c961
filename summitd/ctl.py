"""summitctl: manage accounts and check a configuration, without a running server.

It builds the same SummitServer the daemon runs (extensions included, so account
deletion reaches every extension's data) on a synchronous database connection
and a clock that never ticks. SQLite's WAL lets it run beside a live server.
"""

import argparse
import getpass
import json
import sys

from twisted.internet import task

from summitd.accounts import AccountError, AccountExists
from summitd.config import ConfigError, load_config
from summitd.extensions.loader import discover, load_order, parse_extension_configs
from summitd.server import SummitServer
from summitd.storage.database import Database
from summitd.storage.engines import engine_from_url
from summitd.synchronous import result_of
from summitd.tls import ensure_certificate
from summitd.version import NAME, RELEASE_DATE, VERSION


class CommandError(Exception):
    """Printed as 'summitctl: <message>' with exit status 1."""


def _read_password(args, confirm=True):
    if args.password_file:
        with open(args.password_file, encoding="utf-8") as f:
            return f.readline().rstrip("\r\n")
    password = getpass.getpass("Password: ")
    if confirm and getpass.getpass("Again: ") != password:
        raise CommandError("the passwords differ")
    return password


def _open_server(config):
    config.server.data_dir.mkdir(parents=True, exist_ok=True)
    base_dir = config.path.parent
    database = Database(engine_from_url(config.storage.database, base_dir), None, synchronous=True)
    clock = task.Clock()
    server = SummitServer(config, clock, clock=clock, database=database)
    result_of(server.start())
    return server


def cmd_adduser(config, args):
    server = _open_server(config)
    password = _read_password(args)
    try:
        jid = result_of(server.account_manager.create(args.jid, password))
    except AccountExists:
        raise CommandError(f"{args.jid} exists already") from None
    print(f"created {jid.userhost()}")


def cmd_deluser(config, args):
    server = _open_server(config)
    if not result_of(server.account_manager.delete(args.jid)):
        raise CommandError(f"no account {args.jid}")
    print(f"deleted {args.jid}")


def cmd_passwd(config, args):
    server = _open_server(config)
    password = _read_password(args)
    from summitd.storage.accounts import NoSuchAccount
    try:
        result_of(server.account_manager.set_password(args.jid, password))
    except NoSuchAccount:
        raise CommandError(f"no account {args.jid}") from None
    print(f"password changed for {args.jid}")


def cmd_list_users(config, args):
    server = _open_server(config)
    for host, user in result_of(server.account_manager.list(args.domain)):
        print(f"{user}@{host}")


def cmd_check_config(config, args):
    available = discover()
    order = load_order(config.extensions.enabled, available)
    parse_extension_configs(order, available, config.extensions.options)
    print(f"{config.path}: OK ({len(config.server.domains)} domain(s), extensions: "
          f"{', '.join(order) or 'none'})")


def cmd_prepare(config, args):
    """Everything `make run` needs before the daemon starts: data dir, certificate, schema."""
    server = _open_server(config)
    cert, _ = ensure_certificate(config)
    users = len(result_of(server.account_manager.list()))
    print(f"data in {config.server.data_dir}; certificate {cert}; {users} account(s)")


def cmd_check(config, args):
    """check dns DOMAIN: what federation would resolve, what was secure, what policy says.
    Runs a reactor (DNS is network I/O) and exits when the report is printed."""
    from twisted.internet import task

    from summitd.dns.check import check_dns_lines

    def report(reactor):
        return check_dns_lines(config, args.domain, reactor).addCallback(
            lambda lines: print("\n".join(lines)))

    task.react(report)


def cmd_app_password(config, args):
    from summitd import ctl_credentials
    ctl_credentials.run(_open_server(config), args)


COMMANDS = {
    "adduser": cmd_adduser,
    "deluser": cmd_deluser,
    "passwd": cmd_passwd,
    "list-users": cmd_list_users,
    "check-config": cmd_check_config,
    "prepare": cmd_prepare,
    "app-password": cmd_app_password,
    "check": cmd_check,
}


def _registration_commands():
    from summitd import ctl_registration
    return ctl_registration.COMMANDS, ctl_registration.RegistrationCommandError


def build_parser():
    parser = argparse.ArgumentParser(prog="summitctl", description="Manage a summitd server.")
    parser.add_argument("--config", default="etc/summitd.toml", help="the TOML config file")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("adduser", "passwd"):
        p = sub.add_parser(name, help=f"{'create an account' if name == 'adduser' else 'set a password'}")
        p.add_argument("jid")
        p.add_argument("--password-file", help="read the password from the first line of this file")
    sub.add_parser("deluser", help="delete an account and all its data").add_argument("jid")
    p = sub.add_parser("list-users", help="list accounts")
    p.add_argument("--domain", help="only this domain")
    sub.add_parser("check-config", help="validate the configuration")
    sub.add_parser("prepare", help="create the data dir, certificate and database")
    p = sub.add_parser("check", help="diagnostics: check dns DOMAIN (SRV, DNSSEC, DANE, policy)")
    p.add_argument("what", choices=["dns"])
    p.add_argument("domain")
    from summitd import ctl_credentials, ctl_registration
    ctl_credentials.add_parser(sub)
    ctl_registration.add_parsers(sub)
    p = sub.add_parser("version", help="name, version and release date")
    p.add_argument("--json", action="store_true", help="as JSON")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.command == "version":
        info = {"name": NAME, "version": VERSION, "release": RELEASE_DATE}
        print(json.dumps(info) if args.json else f"{NAME} {VERSION} ({RELEASE_DATE})")
        return 0
    registration_commands, RegistrationCommandError = _registration_commands()
    try:
        config = load_config(args.config)
        {**COMMANDS, **registration_commands}[args.command](config, args)
    except ConfigError as e:
        print(f"summitctl: {args.config} is invalid:", file=sys.stderr)
        for path, message in e.errors:
            print(f"  {path}: {message}", file=sys.stderr)
        return 1
    except (CommandError, AccountError, RegistrationCommandError) as e:
        print(f"summitctl: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
