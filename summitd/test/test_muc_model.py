"""The channel model's rules, the forms of both faces and the extensions' options
(summitd.plugins.channels.model, forms, and each module's parse_config), without a server."""

from twisted.trial import unittest

from summitd.config import ConfigError
from summitd.core.errors import StanzaError
from summitd.plugins.channels import directory, mix, muc, pam
from summitd.plugins.channels.forms import (
    mix_config_form, mix_info_form, muc_config_form, parse_mix_config, parse_mix_info, parse_muc_config)
from summitd.plugins.channels.model import (
    Channel, ChannelConfig, ChannelError, Member, Occupant, clean_nick, nick_key)
from summitd.testing import parse_xml

ALICE, BOB, CAROL = "alice@localhost", "bob@localhost", "carol@localhost"


def channel(**config):
    return Channel("localhost", "coven", ChannelConfig(**config),
                   {ALICE: Member(ALICE, "owner"), BOB: Member(BOB, "member", "bob")})


def submitted(form_type, **fields):
    body = "".join(f"<field var='{var.replace('__', '#')}'>" + "".join(
        f"<value>{v}</value>" for v in (value if isinstance(value, list) else [value])) + "</field>"
        for var, value in fields.items())
    return parse_xml(f"<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>{form_type}</value>"
                     f"</field>{body}</x>")


class NickTests(unittest.TestCase):
    def test_nicks_compare_case_insensitively(self):
        """RFC 8266: case and width fold for comparison; spaces collapse when shown."""
        self.assertEqual(nick_key("Hecate"), nick_key("hecate"))
        self.assertEqual(clean_nick("  Third   Witch "), "Third Witch")

    def test_bad_nicks(self):
        """An empty or overlong nick is jid-malformed."""
        for bad in ("", " ", "x" * 65):
            with self.assertRaises(ChannelError) as caught:
                nick_key(bad)
            self.assertEqual(caught.exception.condition, "jid-malformed")

    def test_one_namespace(self):
        """A member's held nick is taken for everyone else, whatever the case."""
        room = channel()
        room.check_nick(BOB, "BOB")
        with self.assertRaises(ChannelError):
            room.check_nick(CAROL, "Bob")


class EntryTests(unittest.TestCase):
    def assertRefused(self, condition, room, bare, nick="x", password=None):
        with self.assertRaises(ChannelError) as caught:
            room.check_entry(bare, nick, password)
        self.assertEqual(caught.exception.condition, condition)

    def test_order_of_checks(self):
        """Banned beats members-only beats password beats nick conflict."""
        room = channel(members_only=True, password="pw")
        room.members[CAROL] = Member(CAROL, "outcast")
        self.assertRefused("forbidden", room, CAROL, "bob")
        self.assertRefused("registration-required", room, "dave@localhost", "bob")
        self.assertRefused("not-authorized", room, BOB, "bob", "wrong")
        room.members["eve@localhost"] = Member("eve@localhost", "member")
        self.assertRefused("conflict", room, "eve@localhost", "bob", "pw")

    def test_owners_skip_the_password(self):
        """Owners and admins enter without the password."""
        channel(password="pw").check_entry(ALICE, "hecate", None)

    def test_roles(self):
        """Owners and admins moderate; members participate; others visit in moderated rooms."""
        room = channel(moderated=True)
        self.assertEqual([room.default_role(j) for j in (ALICE, BOB, CAROL)], ["moderator", "participant", "visitor"])

    def test_rights(self):
        """MIX rights levels follow the affiliation and participation."""
        room = channel(members_only=True)
        room.members[CAROL] = Member(CAROL, "none", "c", True)
        self.assertEqual([room.has_right(CAROL, r) for r in ("anyone", "allowed", "participants", "admins")],
                         [True, True, True, False])
        self.assertFalse(room.has_right("dave@localhost", "allowed"))
        room.members["dave@localhost"] = Member("dave@localhost", "outcast")
        self.assertFalse(room.has_right("dave@localhost", "anyone"))

    def test_role_changes(self):
        """Participants may not kick; nobody kicks an admin; a moderator may not kick itself."""
        room = channel()
        owner, bob = Occupant("hecate", ALICE, "moderator"), Occupant("bob", BOB, "participant")
        with self.assertRaises(ChannelError):
            room.check_role_change(BOB, "participant", owner, "none")
        with self.assertRaises(ChannelError) as caught:
            room.check_role_change(BOB, "moderator", owner, "none")
        self.assertEqual(caught.exception.condition, "not-allowed")
        with self.assertRaises(ChannelError) as caught:
            room.check_role_change(ALICE, "moderator", owner, "none")
        self.assertEqual(caught.exception.condition, "conflict")
        room.check_role_change(ALICE, "moderator", bob, "visitor")


class FormTests(unittest.TestCase):
    def test_muc_round_trip(self):
        """The room configuration form shows the values a submission sets."""
        room = channel()
        config, affiliations = parse_muc_config(submitted(
            "http://jabber.org/protocol/muc#roomconfig", muc__roomconfig_roomname="Coven",
            muc__roomconfig_membersonly="1", muc__roomconfig_maxusers="50",
            muc__roomconfig_roomadmins=[BOB]), room)
        self.assertEqual((config.name, config.members_only, config.max_users), ("Coven", True, 50))
        self.assertEqual(affiliations, {BOB: "admin"})
        room.config = config
        self.assertIn("<value>50</value>", muc_config_form(room).toXml())

    def test_mix_names_and_legacy_names(self):
        """MIX fields are mix#... tags; the XEP's labels are accepted as names too."""
        room = channel()
        info = parse_mix_info(submitted("urn:xmpp:mix:core:1", mix__name="Coven", Description="Heath"), room)
        self.assertEqual((info.name, info.description), ("Coven", "Heath"))
        config, affiliations = parse_mix_config(submitted(
            "urn:xmpp:mix:admin:0", mix__jid_visibility="visible", mix__private_messages="0",
            **{"Messages Node Subscription": "anyone"}), room)
        self.assertEqual((config.whois, config.allow_pm, config.messages_subscription), ("anyone", "none", "anyone"))
        self.assertEqual(affiliations, {})
        room.config = config
        self.assertIn("var='mix#name'", mix_info_form(room).toXml())
        self.assertIn("var='mix#messages_node_subscription'", mix_config_form(room).toXml())

    def test_bad_values(self):
        """A value outside a field's options, an empty owner list or a wrong FORM_TYPE fail."""
        room = channel()
        cases = [
            (parse_mix_config, "urn:xmpp:mix:admin:0", {"mix__messages_node_subscription": "everyone"}),
            (parse_mix_config, "urn:xmpp:mix:admin:0", {"mix__owner": []}),
            (parse_muc_config, "http://jabber.org/protocol/muc#roomconfig",
             {"muc__roomconfig_passwordprotectedroom": "1"}),
            (parse_mix_info, "urn:xmpp:wrong", {}),
        ]
        for parse, form_type, fields in cases:
            with self.assertRaises(StanzaError):
                parse(submitted(form_type, **fields), room)

    def test_config_round_trips_through_dicts(self):
        """ChannelConfig survives to_dict/from_dict, tuples included."""
        config = ChannelConfig(contact=(ALICE,), whois="anyone")
        self.assertEqual(ChannelConfig.from_dict(config.to_dict()), config)


class OptionTests(unittest.TestCase):
    def test_defaults(self):
        """Empty tables give the documented defaults."""
        self.assertEqual(muc.parse_config({}, "extensions.muc").host, "conference.{domain}")
        self.assertEqual(mix.parse_config({}, "extensions.mix").host, "mix.{domain}")
        self.assertEqual(directory.parse_config({}, "extensions.channels").history_length, 20)
        self.assertEqual(pam.parse_config({}, "extensions.mix_pam").deliver_to, "available")

    def test_errors_name_their_keys(self):
        """Every bad option is reported with its key path."""
        cases = [
            (muc.parse_config, {"whois": "all", "host": "bad host", "typo": 1}, 3),
            (mix.parse_config, {"name": 5}, 1),
            (directory.parse_config, {"storage": "disk", "admins": ["not a jid@@"], "history_length": -1}, 3),
            (pam.parse_config, {"deliver_to": "some", "request_timeout": 0}, 2),
        ]
        for parse, raw, count in cases:
            with self.assertRaises(ConfigError) as caught:
                parse(raw, "extensions.x")
            self.assertEqual(len(caught.exception.errors), count, caught.exception.errors)
