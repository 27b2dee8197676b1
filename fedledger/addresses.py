"""Ethereum addresses as people type them: checked where they enter, and written in EIP-55 form.

An address is ``0x`` and 40 hex digits (20 bytes). All-lowercase or all-uppercase digits carry no
checksum and are taken as they are; mixed case is an EIP-55 checksum and must be the right one, so
that a mistyped digit in a copied address is caught before anything is registered or paid to it.
"""

import re

from eth_typing import ChecksumAddress
from eth_utils import is_checksum_address, to_checksum_address

from fedledger.errors import FedLedgerError

_HEX_DIGITS = re.compile(r"[0-9a-fA-F]*")
ADDRESS_DIGITS = 40


class AddressError(FedLedgerError, ValueError):
    """Text that is not an Ethereum address, or a mixed-case address whose EIP-55 checksum is wrong."""


def checksum_address(text: str, what: str = "address") -> ChecksumAddress:
    """``text`` as an EIP-55 checksummed address.

    Raises:
        AddressError: naming ``what`` (e.g. ``--registry``) and what is wrong: the prefix, the number
            of digits, a character that is not hex, or a wrong checksum.
    """
    if not text.startswith("0x"):
        raise AddressError(f"{what} {text!r} is not an Ethereum address: it must start with 0x")
    digits = text[2:]
    if not _HEX_DIGITS.fullmatch(digits):
        raise AddressError(f"{what} {text!r} is not an Ethereum address: it holds characters that are not hex digits")
    if len(digits) != ADDRESS_DIGITS:
        raise AddressError(
            f"{what} {text!r} is not an Ethereum address: it has {len(digits)} hex digits, not {ADDRESS_DIGITS}"
        )
    mixed_case = digits != digits.lower() and digits != digits.upper()
    if mixed_case and not is_checksum_address(text):
        raise AddressError(
            f"{what} {text!r} has a wrong EIP-55 checksum (the case of its letters): "
            "a digit may be mistyped; copy the address again"
        )
    return to_checksum_address(text)
