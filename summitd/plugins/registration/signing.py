"""Signed forms (XEP-0348): the OAuth 1.0 signature (RFC 5849 §3.4) of a data form.

Both sides live here: ``verify`` for the server and ``sign`` for the devices of a
fleet (tests, the IoT example). The signature covers every field of the submitted
form except ``oauth_token_secret`` and ``oauth_signature``, sorted by name (then
value), each name and value NFC-normalised and percent-encoded (RFC 3986 unreserved
characters kept, upper-case hex), joined as ``name=value`` with '&'; the base string is
Escape("submit") & Escape(to) & Escape(parameters) (XEP-0348 §2.3-§2.4).

HMAC-SHA1 keys with Escape(consumer_secret) & Escape(token_secret); RSA-SHA1 signs with
the device's private key (RSASSA-PKCS1-v1_5, SHA-1) and the server holds the public
key. PLAINTEXT proves nothing a replayed form would not, so it is refused.
"""

import base64
import hashlib
import hmac
import unicodedata
from urllib.parse import quote, unquote

HMAC_SHA1 = "HMAC-SHA1"
RSA_SHA1 = "RSA-SHA1"
EXCLUDED = frozenset({"oauth_token_secret", "oauth_signature"})


def escape(text):
    return quote(unicodedata.normalize("NFC", text).encode("utf-8"), safe="-._~")


def base_string(fields, to, form_type="submit"):
    """The signature base string of a form given as {var: [values]}."""
    pairs = sorted((escape(name), escape(value)) for name, values in fields.items()
                   if name not in EXCLUDED for value in (values or [""]))
    parameters = "&".join(f"{name}={value}" for name, value in pairs)
    return f"{escape(form_type)}&{escape(to)}&{escape(parameters)}"


def hmac_signature(base, consumer_secret, token_secret):
    key = f"{escape(consumer_secret)}&{escape(token_secret)}".encode("utf-8")
    return base64.b64encode(hmac.new(key, base.encode("utf-8"), hashlib.sha1).digest()).decode("ascii")


def sign(fields, to, consumer_key, token_secret, method=HMAC_SHA1, secret=None, private_key=None):
    """The device's side: set ``oauth_consumer_key``/``oauth_signature_method`` and add the
    ``oauth_signature`` (escaped, as §2.5 shows) to ``fields`` ({var: [values]})."""
    fields = dict(fields)
    fields["oauth_consumer_key"] = [consumer_key]
    fields["oauth_signature_method"] = [method]
    base = base_string(fields, to)
    if method == HMAC_SHA1:
        signature = hmac_signature(base, secret, token_secret)
    else:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding
        raw = private_key.sign(base.encode("utf-8"), padding.PKCS1v15(), hashes.SHA1())
        signature = base64.b64encode(raw).decode("ascii")
    fields["oauth_signature"] = [escape(signature)]
    return fields


def verify(fields, to, key, token_secret):
    """Whether ``fields`` carry a valid signature by ``key`` (a policy.SigningKey)."""
    signature = unquote((fields.get("oauth_signature") or [""])[0])
    if not signature:
        return False
    base = base_string(fields, to)
    if key.method == HMAC_SHA1:
        return hmac.compare_digest(hmac_signature(base, key.secret, token_secret), signature)
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    try:
        raw = base64.b64decode(signature, validate=True)
        load_pem_public_key(key.public_key).verify(raw, base.encode("utf-8"), padding.PKCS1v15(), hashes.SHA1())
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True
