"""What an account's password is stored as: SCRAM salted keys (RFC 5802 §3), never the password."""

from dataclasses import dataclass

#: The hash functions we keep keys for, by SCRAM name suffix.
SCRAM_HASHES = {"sha1": "SHA-1", "sha256": "SHA-256"}


@dataclass(frozen=True)
class ScramCredentials:
    """One hash function's stored keys for one account."""

    hash_name: str      # "sha1" or "sha256" (hashlib names)
    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes
