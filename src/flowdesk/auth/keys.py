"""API key format: ``fdk_`` + 32 base62 characters of randomness (190 bits) + 6 base62
characters of CRC32 checksum.

The prefix makes a leaked key recognisable to secret scanners, and the checksum lets them
(and us) reject random noise offline, without a database lookup. Only the SHA-256 of the whole
key is stored: the key has far more entropy than a password, so a fast hash is the right tool
and a pepper would only make rotation harder.
"""

from __future__ import annotations

import hashlib
import secrets
import zlib

KEY_PREFIX = "fdk_"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_RANDOM_CHARS = 32
_CHECKSUM_CHARS = 6
KEY_LENGTH = len(KEY_PREFIX) + _RANDOM_CHARS + _CHECKSUM_CHARS
# How much of a key listings show, so that people can tell their keys apart.
DISPLAY_PREFIX_LENGTH = len(KEY_PREFIX) + 8


def _base62(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, rem = divmod(number, 62)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode("ascii")), _CHECKSUM_CHARS)


def generate_key() -> str:
    body = "".join(secrets.choice(_ALPHABET) for _ in range(_RANDOM_CHARS))
    return KEY_PREFIX + body + _checksum(body)


def is_well_formed(key: str) -> bool:
    """Prefix, length, alphabet and checksum all right: the offline check a scanner can do."""
    if len(key) != KEY_LENGTH or not key.startswith(KEY_PREFIX):
        return False
    rest = key[len(KEY_PREFIX) :]
    if any(c not in _ALPHABET for c in rest):
        return False
    body, check = rest[:_RANDOM_CHARS], rest[_RANDOM_CHARS:]
    return secrets.compare_digest(_checksum(body), check)


def hash_key(key: str) -> bytes:
    # UTF-8, not ASCII: any string may be hashed (a cache lookup comes before the format
    # check), and for a real key, which is ASCII, the two encodings are the same bytes.
    return hashlib.sha256(key.encode("utf-8")).digest()


def display_prefix(key: str) -> str:
    return key[:DISPLAY_PREFIX_LENGTH]
