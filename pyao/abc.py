"""The interfaces of pyao, gathered in one place.

Each unit, VM and device is written against these. Concrete classes override
only what differs. Later interfaces (stores, schedulers, VMs, devices) join
this file as the units that need them land.
"""

from __future__ import annotations

from abc import ABC, abstractmethod


class Signer(ABC):
    """Something that signs ANS-104 data items: a user's wallet, or a unit's own key.

    ``sign`` receives the 48-byte deep hash of the item and returns the raw
    signature bytes for ``signature_type`` (see ``pyao.data.signing.SCHEMES``).
    The MU and SU use the same interface to sign what they create, so a unit's
    key type (RSA for compatibility, Ed25519 for speed) is configuration.
    """

    #: ANS-104 signature type this signer produces.
    signature_type: int

    @property
    @abstractmethod
    def owner(self) -> bytes:
        """The raw public key written into the item's owner field."""

    @abstractmethod
    def sign(self, message: bytes) -> bytes:
        """Sign ``message`` (a deep hash) and return the raw signature."""

    @property
    def address(self) -> str:
        """The address ao shows for this signer (``From``/``Owner``)."""
        from pyao.data.signing import scheme_for

        return scheme_for(self.signature_type).address(self.owner)


# ==================================================================== gateway
# (interfaces of the permanent store: its storage backend, and the read side a
#  remote Arweave gateway also offers)
# ==================================================================== end gateway


# ==================================================================== scheduler unit
# (interfaces of the SU: its schedule store)
# ==================================================================== end scheduler unit
