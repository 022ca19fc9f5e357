"""base64url without padding, as Arweave writes ids, owners and signatures."""

from __future__ import annotations

import base64
import binascii
import re

from pyao.errors import ParseError

_B64URL = re.compile(rb"[A-Za-z0-9_-]*={0,2}")


def b64url_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_decode(text: str | bytes) -> bytes:
    """Decode base64url with or without padding; ParseError on anything else."""
    if isinstance(text, str):
        try:
            text = text.encode("ascii")
        except UnicodeEncodeError as exc:
            raise ParseError("base64url text must be ASCII") from exc
    if not _B64URL.fullmatch(text):
        raise ParseError("base64url text has characters outside [A-Za-z0-9_-]")
    text = text.rstrip(b"=")
    if len(text) % 4 == 1:
        raise ParseError("base64url text has an impossible length")
    try:
        return base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:  # pragma: no cover - regex screens first
        raise ParseError(f"invalid base64url: {exc}") from exc


def decode_id(text: str) -> bytes:
    """A 43-character id (transaction, process, wallet address) as its 32 raw bytes.

    Only the canonical spelling is accepted, so one id has exactly one text form.
    """
    if not isinstance(text, str) or len(text) != 43:
        raise ParseError(f"an id is 43 base64url characters, got {text!r}")
    raw = b64url_decode(text)
    if b64url_encode(raw) != text:
        raise ParseError(f"id {text!r} is not canonical base64url")
    return raw


def is_id(text: object) -> bool:
    """True when ``text`` is a canonical 43-character id."""
    try:
        decode_id(text)  # type: ignore[arg-type]
    except ParseError:
        return False
    return True
