"""Result Set Management (summitd.core.rsm, XEP-0059) and full-text search terms
(summitd.plugins.mam.fulltext, XEP-0431): parsing what clients send."""

from twisted.trial import unittest

from summitd.core.errors import StanzaError
from summitd.core.rsm import NS_RSM, RSMRequest, build_rsm, parse_rsm
from summitd.plugins.mam import fulltext
from summitd.testing import parse_xml


def parse(inner):
    return parse_rsm(parse_xml(f"<query xmlns='urn:example'><set xmlns='{NS_RSM}'>{inner}</set></query>"))


class ParseTests(unittest.TestCase):
    def test_absent(self):
        """No <set/> is None."""
        self.assertIsNone(parse_rsm(parse_xml("<query xmlns='urn:example'/>")))

    def test_values(self):
        """max, after, before (empty: the last page) and index are read."""
        self.assertEqual(parse("<max>10</max><after>abc</after>"), RSMRequest(max=10, after="abc"))
        last = parse("<max>5</max><before/>")
        self.assertEqual((last.before, last.backwards), ("", True))
        self.assertEqual(parse("<index>3</index>").index, 3)

    def test_malformed(self):
        """Non-numeric, negative or huge numbers, duplicates, empty after, after+before and
        index with a cursor are bad-request."""
        for inner in ("<max>ten</max>", "<max>-1</max>", "<max>99999999999</max>", "<max>١</max>",
                      "<max>1</max><max>2</max>", "<after/>", "<after>a</after><before>b</before>",
                      "<index>1</index><before/>"):
            with self.assertRaises(StanzaError) as raised:
                parse(inner)
            self.assertEqual(raised.exception.condition, "bad-request", inner)


class BuildTests(unittest.TestCase):
    def test_full_page(self):
        """first (with index), last and count."""
        element = build_rsm("a", "b", 4, 10)
        self.assertEqual(element.toXml(),
                         f"<set xmlns='{NS_RSM}'><first index='4'>a</first><last>b</last>"
                         "<count>10</count></set>")

    def test_empty_page(self):
        """An empty page has only the count."""
        self.assertEqual(build_rsm(count=0).toXml(), f"<set xmlns='{NS_RSM}'><count>0</count></set>")


class FulltextTests(unittest.TestCase):
    def test_tokens(self):
        """Tokens are folded letters and digits; everything else separates them."""
        self.assertEqual(fulltext.tokens("Crème Brûlée, 2 × e-mail!"),
                         ["creme", "brulee", "2", "e", "mail"])

    def test_parse_search(self):
        """Words become terms; '*' makes a prefix; a hyphenated word is a phrase."""
        terms = fulltext.parse_search("Café e-mail hol*")
        self.assertEqual(terms, (fulltext.Term(("cafe",)), fulltext.Term(("e", "mail")),
                                 fulltext.Term(("hol",), prefix=True)))
        self.assertEqual(fulltext.fts5_expression(terms), '"cafe" AND "e mail" AND "hol"*')

    def test_bad_searches(self):
        """No word, or too many words, is refused."""
        self.assertRaises(ValueError, fulltext.parse_search, " ?! ")
        self.assertRaises(ValueError, fulltext.parse_search, " ".join(["w"] * 17))

    def test_injection_is_inert(self):
        """FTS5 syntax in a search is only text."""
        terms = fulltext.parse_search('NEAR(a b) OR "x" body:y')
        self.assertEqual(fulltext.fts5_expression(terms),
                         '"near a" AND "b" AND "or" AND "x" AND "body y"')

    def test_matches(self):
        """Phrases need adjacent tokens; prefixes match the phrase's last token."""
        doc = fulltext.tokens("send me an e-mail tomorrow")
        self.assertTrue(fulltext.matches(fulltext.parse_search("e-mail tomo*"), doc))
        self.assertFalse(fulltext.matches(fulltext.parse_search("me-an-mail"), doc))
        self.assertFalse(fulltext.matches(fulltext.parse_search("mail today"), doc))
