"""The SHA-256 hashcash proof-of-work of CAPTCHA Forms (XEP-0158 §5.2), both sides.

The challenger picks a random ``label`` of exactly ``bits`` bits (2^(bits-1) <= label <
2^bits) and sends it in hex as the label of the 'SHA-256' field. The sender answers a
string that starts with ``prefix`` (the JID its triggering stanza went to) and whose
SHA-256, read as a big-endian number, ends in the label's bits. Finding one takes
about 2^bits hashes; checking one takes a single hash of a bounded string, so the
server's cost stays constant whatever the difficulty.

Used for registration (XEP-0389 challenge of type urn:xmpp:captcha, and XEP-0077 with
the CAPTCHA form of XEP-0158 §4) and for challenging strangers' messages.
"""

import hashlib
import itertools
import secrets

MAX_ANSWER = 1100       # a JID (at most 3071 octets in theory; real ones are short) plus a counter


def new_label(bits):
    """A random label with exactly ``bits`` bits, as lower-case hex."""
    return format((1 << (bits - 1)) | secrets.randbits(bits - 1), "x")


def label_bits(label):
    try:
        return int(label, 16).bit_length()
    except ValueError:
        return 0


def check(answer, prefix, label):
    """Whether ``answer`` proves the work asked by ``label`` for ``prefix``."""
    if not answer or len(answer) > MAX_ANSWER or not answer.startswith(prefix):
        return False
    target = int(label, 16)
    mask = (1 << target.bit_length()) - 1
    digest = int.from_bytes(hashlib.sha256(answer.encode("utf-8")).digest(), "big")
    return digest & mask == target


def solve(prefix, label, limit=1 << 28):
    """The client's side (tests, the flood bench and example clients): an answer for
    ``label``, or None after ``limit`` tries."""
    target = int(label, 16)
    mask = (1 << target.bit_length()) - 1
    base = prefix.encode("utf-8")
    for counter in itertools.islice(itertools.count(), limit):
        text = base + format(counter, "X").encode("ascii")
        if int.from_bytes(hashlib.sha256(text).digest(), "big") & mask == target:
            return text.decode("utf-8")
    return None
