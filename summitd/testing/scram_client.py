"""A small SCRAM client (RFC 5802) for tests and the benchmark: the other side of summitd.sasl."""

import base64
import hashlib
import hmac
import secrets


def _b64(data):
    return base64.b64encode(data).decode("ascii")


def salted_password(password, salt, iterations, hash_name="sha256"):
    """PBKDF2 as SCRAM's Hi(); cache it per account to make repeated logins cheap."""
    return hashlib.pbkdf2_hmac(hash_name, password.encode("utf-8"), salt, iterations)


class ScramClient:
    """Drives one SCRAM exchange: first() -> final(server_first) -> verify(server_final)."""

    def __init__(self, username, password, hash_name="sha256", cb_type=None, cb_data=b"",
                 nonce=None, salted_cache=None):
        self.username = username
        self.password = password
        self.hash_name = hash_name
        self.gs2_header = (f"p={cb_type},," if cb_type else "n,,").encode("ascii")
        self.cb_data = cb_data
        self.nonce = nonce or secrets.token_urlsafe(18)
        self._salted_cache = salted_cache
        self.server_attributes = {}

    def first(self):
        name = self.username.replace("=", "=3D").replace(",", "=2C")
        self._client_first_bare = f"n={name},r={self.nonce}"
        return self.gs2_header + self._client_first_bare.encode("utf-8")

    def final(self, server_first):
        text = server_first.decode("utf-8")
        attrs = dict(part.split("=", 1) for part in text.split(","))
        self.server_attributes = attrs
        if not attrs["r"].startswith(self.nonce):
            raise ValueError("server nonce does not extend ours")
        salt = base64.b64decode(attrs["s"])
        iterations = int(attrs["i"])
        key = (salt, iterations, self.hash_name, self.password)
        salted = None if self._salted_cache is None else self._salted_cache.get(key)
        if salted is None:
            salted = salted_password(self.password, salt, iterations, self.hash_name)
            if self._salted_cache is not None:
                self._salted_cache[key] = salted
        channel = _b64(self.gs2_header + self.cb_data)
        without_proof = f"c={channel},r={attrs['r']}"
        auth_message = f"{self._client_first_bare},{text},{without_proof}".encode("utf-8")
        digest = getattr(hashlib, self.hash_name)
        client_key = hmac.new(salted, b"Client Key", self.hash_name).digest()
        stored_key = digest(client_key).digest()
        signature = hmac.new(stored_key, auth_message, self.hash_name).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        server_key = hmac.new(salted, b"Server Key", self.hash_name).digest()
        self._expected_server_signature = hmac.new(server_key, auth_message, self.hash_name).digest()
        return f"{without_proof},p={_b64(proof)}".encode("utf-8")

    def verify(self, server_final):
        """True when the server proved it knows the password too."""
        attrs = dict(part.split("=", 1) for part in server_final.decode("utf-8").split(","))
        return hmac.compare_digest(base64.b64decode(attrs.get("v", "")), self._expected_server_signature)
