"""Tests for summitd.core.jid: RFC 7622 parsing, normalisation and Twisted compatibility."""

import copy
import pickle

import summitd  # noqa: F401  (installs the wokkel compat shim before wokkel loads)

from twisted.trial import unittest
from twisted.words.protocols.jabber import jid as twisted_jid

from summitd.core import jid as jidmod
from summitd.core.jid import (
    JID,
    InvalidJID,
    jid_from_parts,
    parse_jid,
    prepare_domain,
    prepare_localpart,
    prepare_resource,
)


class RFC7622ExamplesTests(unittest.TestCase):
    """The sample JIDs and non-JIDs of RFC 7622 §3.5."""

    def assertParts(self, text, user, host, resource):
        parsed = parse_jid(text)
        self.assertEqual((parsed.user, parsed.host, parsed.resource), (user, host, resource))

    def test_bare_jid(self):
        """Example 1: a bare JID."""
        self.assertParts("juliet@example.com", "juliet", "example.com", None)

    def test_full_jid(self):
        """Example 2: a full JID."""
        self.assertParts("juliet@example.com/foo", "juliet", "example.com", "foo")

    def test_space_in_resource(self):
        """Example 3: a single space inside the resourcepart is kept."""
        self.assertParts("juliet@example.com/foo bar", "juliet", "example.com", "foo bar")

    def test_at_sign_in_resource(self):
        """Example 4: '@' in the resourcepart belongs to the resourcepart."""
        self.assertParts("juliet@example.com/foo@bar", "juliet", "example.com", "foo@bar")

    def test_escaped_space_in_localpart(self):
        """Example 5: the XEP-0106 escape \\20 is an ordinary localpart."""
        self.assertParts("foo\\20bar@example.com", "foo\\20bar", "example.com", None)

    def test_fussball_and_sharp_s_differ(self):
        """Examples 6 and 7: 'fussball' and 'fußball' are both valid and distinct."""
        plain = parse_jid("fussball@example.com")
        sharp = parse_jid("fu\u00dfball@example.com")
        self.assertEqual(sharp.user, "fu\u00dfball")
        self.assertNotEqual(plain, sharp)

    def test_greek_pi(self):
        """Example 8: a localpart of GREEK SMALL LETTER PI."""
        self.assertParts("\u03c0@example.com", "\u03c0", "example.com", None)

    def test_greek_sigmas(self):
        """Examples 9-11: capital sigma maps to small sigma; final sigma stays apart."""
        capital = parse_jid("\u03a3@example.com/foo")
        small = parse_jid("\u03c3@example.com/foo")
        final = parse_jid("\u03c2@example.com/foo")
        self.assertEqual(capital, small)
        self.assertEqual(capital.user, "\u03c3")
        self.assertNotEqual(final, small)
        self.assertEqual(final.user, "\u03c2")

    def test_symbol_in_resource(self):
        """Example 12: BLACK CHESS KING is allowed in a resourcepart."""
        self.assertParts("king@example.com/\u265a", "king", "example.com", "\u265a")

    def test_domain_only(self):
        """Example 13: a mere domainpart is a JID."""
        self.assertParts("example.com", None, "example.com", None)

    def test_domain_and_resource(self):
        """Example 14: a domainpart and a resourcepart."""
        self.assertParts("example.com/foobar", None, "example.com", "foobar")

    def test_domain_then_resource_with_at(self):
        """Example 15: the '/' is matched first, so the '@' is in the resourcepart."""
        self.assertParts("a.example.com/b@example.net", None, "a.example.com", "b@example.net")

    def test_leading_space_in_resource_accepted(self):
        """Example 18: listed as invalid, but OpaqueString allows it; we follow the rules.

        No normative rule in RFC 7622 or RFC 8265 forbids a leading space, so
        the address is accepted and the space kept (see the module docstring).
        """
        self.assertParts("juliet@example.com/ foo", "juliet", "example.com", " foo")

    def test_invalid_examples(self):
        """Examples 16, 17, 19-23 are refused with InvalidJID."""
        for text in [
            '"juliet"@example.com',  # 16: quotation marks in localpart
            "foo bar@example.com",  # 17: space in localpart
            "@example.com/",  # 19: empty localpart and resourcepart
            "henry\u2163@example.com",  # 20: ROMAN NUMERAL FOUR (compatibility char)
            "\u265a@example.com",  # 21: symbol in localpart
            "juliet@",  # 22: no domainpart
            "/foobar",  # 23: resourcepart without domainpart
        ]:
            with self.subTest(text=text):
                self.assertRaises(InvalidJID, parse_jid, text)

    def test_invalid_jid_is_a_value_error_and_twisted_invalid_format(self):
        """InvalidJID is caught by `except ValueError` and by wokkel's `except InvalidFormat`."""
        error = self.assertRaises(InvalidJID, parse_jid, "foo bar@example.com")
        self.assertIsInstance(error, ValueError)
        self.assertIsInstance(error, twisted_jid.InvalidFormat)
        self.assertIn("localpart", str(error))


class SplittingTests(unittest.TestCase):
    """RFC 7622 §3.1-3.2: where the separators fall."""

    def test_empty_localpart_with_separator(self):
        """'@example.com' has an empty localpart: invalid."""
        self.assertRaises(InvalidJID, parse_jid, "@example.com")

    def test_empty_resource_with_separator(self):
        """'user@example.com/' has an empty resourcepart: invalid."""
        self.assertRaises(InvalidJID, parse_jid, "user@example.com/")

    def test_empty_string(self):
        """The empty string is not a JID."""
        self.assertRaises(InvalidJID, parse_jid, "")

    def test_resource_keeps_slashes(self):
        """Everything after the first '/' is the resourcepart, further '/' included."""
        parsed = parse_jid("user@example.com/a/b@c/")
        self.assertEqual(parsed.resource, "a/b@c/")

    def test_second_at_before_slash_is_invalid(self):
        """'a@b@c': the localpart ends at the first '@', so '@' lands in the domainpart."""
        self.assertRaises(InvalidJID, parse_jid, "a@b@c")

    def test_excluded_localpart_characters(self):
        """RFC 7622 §3.3.1: " & ' : < > are refused in a localpart."""
        for char in "\"&':<>":
            with self.subTest(char=char):
                self.assertRaises(InvalidJID, parse_jid, f"a{char}b@example.com")
                self.assertRaises(InvalidJID, prepare_localpart, f"a{char}b")

    def test_full_width_separator_in_localpart_is_refused(self):
        """A FULLWIDTH COMMERCIAL AT maps to '@' after splitting, which §3.3.1 forbids."""
        self.assertRaises(InvalidJID, parse_jid, "a\uff20b@example.com")

    def test_non_string_rejected(self):
        """Bytes are not text: TypeError, not a silent decode."""
        self.assertRaises(TypeError, parse_jid, b"juliet@example.com")


class NormalisationTests(unittest.TestCase):
    """Case folding, width mapping, domain forms."""

    def test_localpart_case_folded(self):
        """UsernameCaseMapped lowercases the localpart."""
        self.assertEqual(parse_jid("JuLiEt@example.com").user, "juliet")

    def test_domain_case_folded(self):
        """The domainpart is compared case-insensitively: it is stored lowercase."""
        self.assertEqual(parse_jid("juliet@EXAMPLE.Com"), parse_jid("juliet@example.com"))

    def test_resource_case_preserved(self):
        """OpaqueString does not case-map: resources differing in case differ."""
        self.assertNotEqual(parse_jid("a@example.com/Foo"), parse_jid("a@example.com/foo"))
        self.assertEqual(parse_jid("a@example.com/Foo").resource, "Foo")

    def test_full_width_localpart(self):
        """Full-width letters in a localpart are width-mapped to their ASCII forms."""
        self.assertEqual(parse_jid("\uff2a\uff35\uff2c\uff29\uff25\uff34@example.com").user, "juliet")

    def test_full_width_domain(self):
        """UTS #46 maps full-width letters and the full-width dot in a domainpart."""
        parsed = parse_jid("a@\uff25\uff38\uff21\uff2d\uff30\uff2c\uff25\uff0e\uff43\uff4f\uff4d")
        self.assertEqual(parsed.host, "example.com")

    def test_trailing_dot_stripped(self):
        """RFC 7622 §3.2: one trailing dot is removed before anything else."""
        self.assertEqual(parse_jid("juliet@example.com./r"), parse_jid("juliet@example.com/r"))
        self.assertEqual(prepare_domain("Example.COM."), "example.com")

    def test_only_one_trailing_dot_stripped(self):
        """Two trailing dots leave an empty label: invalid."""
        self.assertRaises(InvalidJID, prepare_domain, "example.com..")

    def test_empty_labels_rejected(self):
        """Empty labels anywhere in the domainpart are refused."""
        for domain in (".", "..", ".example.com", "a..example.com"):
            with self.subTest(domain=domain):
                self.assertRaises(InvalidJID, prepare_domain, domain)

    def test_a_label_stored_as_u_label(self):
        """An A-label and its U-label give the same, Unicode, domainpart."""
        self.assertEqual(prepare_domain("xn--bcher-kva.example"), "b\u00fccher.example")
        self.assertEqual(prepare_domain("B\u00dcCHER.example"), "b\u00fccher.example")

    def test_invalid_domain_characters(self):
        """IDNA2008 refuses spaces, underscores and leading hyphens."""
        for domain in ("exa mple.com", "under_score.com", "-a.com"):
            with self.subTest(domain=domain):
                self.assertRaises(InvalidJID, prepare_domain, domain)

    def test_ipv4_literal(self):
        """An IPv4 address is kept as the domainpart."""
        parsed = parse_jid("juliet@192.0.2.1/r")
        self.assertEqual(parsed.host, "192.0.2.1")

    def test_ipv6_literal(self):
        """A bracketed IPv6 literal is kept, in canonical lowercase compressed form."""
        self.assertEqual(parse_jid("juliet@[2001:DB8::1]").host, "[2001:db8::1]")
        self.assertEqual(prepare_domain("[0:0:0:0:0:0:0:1]"), "[::1]")

    def test_malformed_ip_literals(self):
        """Unclosed brackets, bad addresses and zone identifiers are refused."""
        for domain in ("[::1", "[not-an-ip]", "[fe80::1%25eth0]", "[1.2.3.4]"):
            with self.subTest(domain=domain):
                self.assertRaises(InvalidJID, prepare_domain, domain)

    def test_idempotent(self):
        """Parsing the string form of a parsed JID gives the same JID."""
        for text in ("Juliet@Example.COM./Balcony", "\u03a3@b\u00fccher.example/\u265a", "[::1]/x"):
            with self.subTest(text=text):
                once = parse_jid(text)
                self.assertEqual(parse_jid(once.full()), once)

    def test_jid_from_parts(self):
        """jid_from_parts normalises each part and takes None for an absent part."""
        built = jid_from_parts("Juliet", "Example.com.", "balcony")
        self.assertEqual(built, parse_jid("juliet@example.com/balcony"))
        self.assertEqual(jid_from_parts(None, "example.com", None).full(), "example.com")
        self.assertRaises(InvalidJID, jid_from_parts, "", "example.com", None)
        self.assertRaises(InvalidJID, jid_from_parts, "a", "example.com", "")

    def test_prepare_helpers(self):
        """The per-part helpers return the normalised part or raise InvalidJID."""
        self.assertEqual(prepare_localpart("\uff2aULIET"), "juliet")
        self.assertEqual(prepare_resource("a\u00a0b"), "a b")  # non-ASCII space mapped
        self.assertRaises(InvalidJID, prepare_resource, "a\u0000b")
        self.assertRaises(InvalidJID, prepare_localpart, "\ud800")


class LengthTests(unittest.TestCase):
    """RFC 7622 §3.1: each part is 1 to 1023 octets of UTF-8."""

    def test_localpart_limit(self):
        """A 1023-octet localpart is fine; 1024 octets is not."""
        self.assertEqual(len(parse_jid("a" * 1023 + "@example.com").user), 1023)
        self.assertRaises(InvalidJID, parse_jid, "a" * 1024 + "@example.com")

    def test_localpart_limit_counts_octets(self):
        """The limit is in octets: 511 two-octet letters plus one fits, 512 don't."""
        self.assertEqual(len(prepare_localpart("\u00e9" * 511 + "a").encode()), 1023)
        self.assertRaises(InvalidJID, prepare_localpart, "\u00e9" * 512)

    def test_resource_limit(self):
        """A 1023-octet resourcepart is fine; 1024 octets is not."""
        self.assertEqual(len(parse_jid("a@example.com/" + "r" * 1023).resource), 1023)
        self.assertRaises(InvalidJID, parse_jid, "a@example.com/" + "r" * 1024)

    def test_resource_limit_counts_octets(self):
        """Three-octet characters: 341 fit (1023 octets), 342 don't (1026)."""
        self.assertEqual(len(prepare_resource("\u265a" * 341).encode()), 1023)
        self.assertRaises(InvalidJID, prepare_resource, "\u265a" * 342)

    def test_domain_limits(self):
        """A 1024-octet domainpart fails; the tighter DNS limits (RFC 1034) apply too.

        RFC 7622 §3.2 keeps the RFC 1034 limits, so no domain name reaches 1023
        octets: 253 octets and 63-octet labels are the real maximum.
        """
        self.assertRaises(InvalidJID, prepare_domain, ("a" * 63 + ".") * 16)  # 1024 octets
        longest = ".".join(["a" * 63] * 3 + ["a" * 61])
        self.assertEqual(len(longest), 253)
        self.assertEqual(prepare_domain(longest), longest)
        self.assertEqual(prepare_domain(longest + "."), longest)  # trailing dot not counted
        self.assertRaises(InvalidJID, prepare_domain, longest + "a")
        self.assertEqual(prepare_domain("a" * 63 + ".com"), "a" * 63 + ".com")
        self.assertRaises(InvalidJID, prepare_domain, "a" * 64 + ".com")

    def test_huge_input_refused(self):
        """A part far past the limit is refused without crashing or hanging."""
        self.assertRaises(InvalidJID, parse_jid, "a@example.com/" + "r" * 1_000_000)
        self.assertRaises(InvalidJID, parse_jid, "a" * 1_000_000 + "@example.com")


class JIDObjectTests(unittest.TestCase):
    """The JID class: Twisted compatibility, immutability, helpers."""

    def test_is_twisted_jid(self):
        """Our JID is a Twisted JID with the usual attributes and methods."""
        parsed = parse_jid("juliet@example.com/balcony")
        self.assertIsInstance(parsed, twisted_jid.JID)
        self.assertEqual(parsed.userhost(), "juliet@example.com")
        self.assertEqual(parsed.full(), "juliet@example.com/balcony")
        self.assertEqual(str(parsed), "juliet@example.com/balcony")
        self.assertEqual(repr(parsed), "JID('juliet@example.com/balcony')")

    def test_equal_and_hash_with_twisted_jid(self):
        """Equal to, and hashing like, a Twisted JID with the same parts, both ways."""
        ours = parse_jid("Juliet@Example.com/balcony")
        theirs = twisted_jid.JID("juliet@example.com/balcony")
        self.assertEqual(ours, theirs)
        self.assertEqual(theirs, ours)
        self.assertEqual(hash(ours), hash(theirs))
        self.assertIn(theirs, {ours: 1})
        self.assertIn(ours, {theirs})
        self.assertNotEqual(ours, twisted_jid.JID("juliet@example.com/other"))

    def test_not_equal_to_strings(self):
        """A JID never equals its string form."""
        self.assertNotEqual(parse_jid("juliet@example.com"), "juliet@example.com")

    def test_bare(self):
        """bare/userhostJID drop the resourcepart and return our JID class."""
        full = parse_jid("juliet@example.com/balcony")
        self.assertFalse(full.is_bare)
        self.assertEqual(full.bare, parse_jid("juliet@example.com"))
        self.assertTrue(full.bare.is_bare)
        self.assertIs(type(full.bare), JID)
        self.assertIs(type(full.userhostJID()), JID)
        bare = parse_jid("juliet@example.com")
        self.assertIs(bare.bare, bare)
        self.assertIs(bare.userhostJID(), bare)

    def test_immutable(self):
        """Attributes can be neither set nor deleted."""
        parsed = parse_jid("juliet@example.com/balcony")
        with self.assertRaises(AttributeError):
            parsed.user = "romeo"
        with self.assertRaises(AttributeError):
            parsed.extra = 1
        with self.assertRaises(AttributeError):
            del parsed.resource
        self.assertEqual(parsed.user, "juliet")

    def test_twisted_style_construction_uses_rfc7622(self):
        """JID(text) and JID(tuple=...) apply RFC 7622, not Twisted's stringprep."""
        # stringprep's nodeprep would map 'ß' to 'ss'; PRECIS keeps it.
        self.assertEqual(JID("Fu\u00dfball@Example.com").user, "fu\u00dfball")
        self.assertEqual(JID(tuple=("A", "B.example", "R")).full(), "a@b.example/R")
        # nodeprep accepts U+265A in a localpart; PRECIS does not.
        self.assertRaises(InvalidJID, JID, "\u265a@example.com")
        self.assertRaises(TypeError, JID)

    def test_from_prepared_trusts_parts(self):
        """from_prepared builds a JID from normalised parts without re-checking."""
        built = JID.from_prepared("juliet", "example.com", "r")
        self.assertEqual(built, parse_jid("juliet@example.com/r"))
        self.assertIsNone(JID.from_prepared("a", "example.com").resource)

    def test_copy_and_pickle(self):
        """Copies are the object itself; pickling round-trips through validation."""
        parsed = parse_jid("juliet@example.com/balcony")
        self.assertIs(copy.copy(parsed), parsed)
        self.assertIs(copy.deepcopy(parsed), parsed)
        restored = pickle.loads(pickle.dumps(parsed))
        self.assertEqual(restored, parsed)
        self.assertIs(type(restored), JID)


class WokkelCompatibilityTests(unittest.TestCase):
    """wokkel APIs take our JID (summitd is imported first, which installs the shim)."""

    def test_disco_item(self):
        """wokkel.disco.DiscoItem serialises our JID through full()."""
        from wokkel import disco

        item = disco.DiscoItem(parse_jid("Conference.Example.com"), "rooms", "Rooms")
        element = item.toElement()
        self.assertEqual(element["jid"], "conference.example.com")
        self.assertEqual(element["node"], "rooms")

    def test_data_form_jid_field(self):
        """A jid-single data form field renders our JID as text."""
        from wokkel import data_form

        field = data_form.Field("jid-single", var="owner", value=parse_jid("Juliet@Example.com"))
        element = field.toElement()
        value = next(element.elements(data_form.NS_X_DATA, "value"))
        self.assertEqual(str(value), "juliet@example.com")


class CacheTests(unittest.TestCase):
    """parse_jid is memoised in a bounded cache."""

    def setUp(self):
        parse_jid.cache_clear()
        self.addCleanup(jidmod.set_parse_cache_size, jidmod.DEFAULT_CACHE_SIZE)

    def test_bounded_by_default(self):
        """The default cache holds at most 10000 texts."""
        self.assertEqual(parse_jid.cache_info().maxsize, 10000)

    def test_hits(self):
        """Parsing the same text twice returns the same (immutable) instance."""
        first = parse_jid("juliet@example.com/balcony")
        second = parse_jid("juliet@example.com/balcony")
        self.assertIs(first, second)
        self.assertEqual(parse_jid.cache_info().hits, 1)

    def test_size_stays_bounded(self):
        """With a small cache, many distinct texts never exceed maxsize."""
        jidmod.set_parse_cache_size(8)
        for i in range(50):
            parse_jid(f"user{i}@example.com")
        info = parse_jid.cache_info()
        self.assertEqual(info.maxsize, 8)
        self.assertLessEqual(info.currsize, 8)

    def test_invalid_input_not_cached(self):
        """Failures are not remembered, so bad input can't grow the cache."""
        for i in range(20):
            self.assertRaises(InvalidJID, parse_jid, f"bad {i}@example.com")
        self.assertEqual(parse_jid.cache_info().currsize, 0)

    def test_long_text_bypasses_cache(self):
        """Texts longer than CACHEABLE_TEXT_LENGTH are parsed but not stored."""
        text = "a@example.com/" + "r" * jidmod.CACHEABLE_TEXT_LENGTH
        self.assertEqual(parse_jid(text).resource, "r" * jidmod.CACHEABLE_TEXT_LENGTH)
        self.assertEqual(parse_jid.cache_info().currsize, 0)

    def test_unbounded_size_refused(self):
        """set_parse_cache_size refuses an unbounded or empty cache."""
        self.assertRaises(ValueError, jidmod.set_parse_cache_size, None)
        self.assertRaises(ValueError, jidmod.set_parse_cache_size, 0)
