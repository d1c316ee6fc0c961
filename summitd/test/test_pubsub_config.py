"""The extensions' options ([extensions.pubsub], [extensions.pep]), node configuration
values, publish-options preconditions and request parsing details."""

from twisted.trial import unittest
from wokkel import data_form

from summitd.config import ConfigError
from summitd.core.errors import StanzaError
from summitd.plugins.pubsub import config as node_config
from summitd.plugins.pubsub.protocol import NS_PUBLISH_OPTIONS, parse_request
from summitd.plugins.pubsub.settings import parse_pep_config, parse_service_config
from summitd.test.test_pubsub_support import form, pubsub
from summitd.testing import make_server, parse_xml


def submitted(fields, namespace=NS_PUBLISH_OPTIONS):
    return data_form.Form.fromElement(parse_xml(form("submit", fields, namespace)))


class SettingsTests(unittest.TestCase):
    def test_defaults(self):
        """No options: SQL storage, pubsub.{domain}, the default limits, compat on."""
        settings = parse_service_config({}, "extensions.pubsub")
        self.assertEqual((settings.storage, settings.host, settings.limits.max_items), ("sql", "pubsub.{domain}", 1000))
        self.assertTrue(parse_pep_config({}, "extensions.pep").bookmarks_compat)

    def test_values(self):
        """Options are read into the settings."""
        settings = parse_service_config({"storage": "memory", "host": "ps.{domain}", "max_nodes": 5},
                                        "extensions.pubsub")
        self.assertEqual((settings.storage, settings.host, settings.limits.max_nodes), ("memory", "ps.{domain}", 5))

    def test_errors_name_their_key(self):
        """Every bad option is reported with its key path; face-specific options belong to their face."""
        error = self.assertRaises(ConfigError, parse_service_config,
                                  {"storage": "disk", "max_items": 0, "host": "bad host{x}", "bookmarks_compat": True,
                                   "colour": "red"}, "extensions.pubsub")
        self.assertEqual(sorted(path for path, _ in error.errors),
                         ["extensions.pubsub.bookmarks_compat", "extensions.pubsub.colour",
                          "extensions.pubsub.host", "extensions.pubsub.max_items", "extensions.pubsub.storage"])
        error = self.assertRaises(ConfigError, parse_pep_config, {"host": "x", "mds_server_assist": "yes"},
                                  "extensions.pep")
        self.assertEqual(sorted(path for path, _ in error.errors),
                         ["extensions.pep.host", "extensions.pep.mds_server_assist"])


    def test_service_is_not_a_hosted_domain(self):
        """The service cannot be the domain itself: "{domain}" is refused, and a template that
        names another hosted domain fails the extension's start."""
        error = self.assertRaises(ConfigError, parse_service_config, {"host": "{domain}"}, "extensions.pubsub")
        self.assertEqual([path for path, _ in error.errors], ["extensions.pubsub.host"])
        self.assertRaises(ConfigError, make_server, domains=("localhost", "ps.localhost"), extensions=["pubsub"],
                          extension_options={"pubsub": {"host": "ps.{domain}"}})


class NodeConfigTests(unittest.TestCase):
    def test_max_items_values(self):
        """pubsub#max_items takes 'max' or 0..limit; the effective number follows the limit."""
        self.assertEqual(node_config.parse_value("pubsub#max_items", ["max"], 50), "max")
        self.assertEqual(node_config.parse_value("pubsub#max_items", ["7"], 50), 7)
        self.assertRaises(ValueError, node_config.parse_value, "pubsub#max_items", ["51"], 50)
        config = dict(node_config.BASE_DEFAULTS, **{"pubsub#max_items": "max"})
        self.assertEqual(node_config.max_items(config, 50), 50)
        config["pubsub#persist_items"] = False
        self.assertEqual(node_config.max_items(config, 50), 0)

    def test_booleans(self):
        """Booleans are 1/true/0/false (XEP-0004); anything else is refused."""
        self.assertTrue(node_config.parse_value("pubsub#notify_sub", ["true"], 10))
        self.assertFalse(node_config.parse_value("pubsub#notify_sub", ["0"], 10))
        self.assertRaises(ValueError, node_config.parse_value, "pubsub#notify_sub", ["yes"], 10)

    def test_max_precondition_matches_the_limit(self):
        """A precondition max_items='max' matches a node configured with the limit as a number."""
        config = dict(node_config.BASE_DEFAULTS, **{"pubsub#max_items": 50})
        wanted = node_config.preconditions(submitted({"pubsub#max_items": "max"}), 50)
        node_config.check_preconditions(config, wanted, 50)
        config["pubsub#max_items"] = 10
        error = self.assertRaises(StanzaError, node_config.check_preconditions, config, wanted, 50)
        self.assertEqual(error.condition, "conflict")

    def test_unknown_configuration_field(self):
        """A configuration form setting a field we do not have is not-acceptable."""
        error = self.assertRaises(StanzaError, node_config.configured, dict(node_config.BASE_DEFAULTS),
                                  submitted({"pubsub#tempsub": "1"}), 10)
        self.assertEqual(error.condition, "not-acceptable")


class RequestParsingTests(unittest.TestCase):
    def parse(self, body, type="set"):
        return parse_request(parse_xml(f"<iq xmlns='jabber:client' type='{type}' id='x'>{body}</iq>"))

    def test_affiliation_jids_are_ours(self):
        """Affiliation JIDs are parsed by summitd (RFC 7622): a bad one is jid-malformed."""
        body = pubsub("<affiliations node='n'><affiliation jid='a@b@c' affiliation='member'/></affiliations>",
                      "http://jabber.org/protocol/pubsub#owner")
        error = self.assertRaises(StanzaError, self.parse, body)
        self.assertEqual(error.condition, "jid-malformed")

    def test_wokkel_errors_become_ours(self):
        """wokkel's own parse errors arrive as summitd StanzaErrors with their pubsub condition."""
        error = self.assertRaises(StanzaError, self.parse, pubsub("<items/>"), "get")
        self.assertEqual((error.condition, error.app_condition.name), ("bad-request", "nodeid-required"))

    def test_rsm_and_notify(self):
        """The RSM set of an items request and the notify flag of a retraction are read."""
        request = self.parse(pubsub("<items node='n'/><set xmlns='http://jabber.org/protocol/rsm'><max>3</max></set>"),
                             "get")
        self.assertEqual(request.rsm.max, 3)
        self.assertTrue(self.parse(pubsub("<retract node='n' notify='1'><item id='a'/></retract>")).notify)

    def test_original_stanza_untouched(self):
        """Parsing leaves the IQ's namespace and addresses alone (wokkel strips a stanza's)."""
        iq = parse_xml("<iq xmlns='jabber:client' type='get' id='x' from='a@localhost/r'>"
                       + pubsub("<items node='n'/>") + "</iq>")
        parse_request(iq)
        self.assertEqual((iq.uri, iq["from"]), ("jabber:client", "a@localhost/r"))
