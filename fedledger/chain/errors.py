"""Chain failures as Python exceptions, with contract reverts decoded to their custom error."""

import ast
from collections.abc import Iterable
from typing import Any

from eth_abi import decode
from eth_abi.exceptions import DecodingError
from eth_tester.exceptions import TransactionFailed
from eth_utils import function_signature_to_4byte_selector, to_checksum_address
from web3.exceptions import ContractLogicError

from fedledger.errors import FedLedgerError

_REVERTED_PREFIX = "execution reverted: "


class ChainError(FedLedgerError):
    """A chain operation failed."""


class ContractRevert(ChainError):
    """A contract call reverted with a custom error, decoded by name with its arguments.

    ``str(error)`` reads like the Solidity it came from, e.g.
    ``RoundOutOfSequence(runId=1, expected=2, given=5)``.
    """

    def __init__(self, name: str, arguments: dict[str, Any]) -> None:
        self.name = name
        self.arguments = arguments
        shown = ", ".join(f"{key}={_show(value)}" for key, value in arguments.items())
        super().__init__(f"{name}({shown})")


def _show(value: Any) -> str:
    return "0x" + value.hex() if isinstance(value, bytes) else str(value)


class ErrorDecoder:
    """Maps revert data to :class:`ContractRevert` using the custom errors declared in ABIs."""

    def __init__(self, abis: Iterable[list[dict[str, Any]]]) -> None:
        self._errors: dict[bytes, tuple[str, list[str], list[str]]] = {}
        for abi in abis:
            for entry in abi:
                if entry["type"] == "error":
                    types = [_abi_type(item) for item in entry["inputs"]]
                    selector = function_signature_to_4byte_selector(f"{entry['name']}({','.join(types)})")
                    names = [item["name"] or f"arg{i}" for i, item in enumerate(entry["inputs"])]
                    self._errors[selector] = (entry["name"], types, names)

    def decode(self, data: bytes) -> ContractRevert | None:
        """Decode revert ``data``; ``None`` when its selector matches no known error."""
        known = self._errors.get(data[:4])
        if known is None:
            return None
        name, types, names = known
        try:
            values = decode(types, data[4:])
        except DecodingError:
            return None
        values = [to_checksum_address(v) if t == "address" else v for t, v in zip(types, values, strict=True)]
        return ContractRevert(name, dict(zip(names, values, strict=True)))

    def from_exception(self, error: Exception) -> ChainError:
        """Turn a web3 or eth-tester revert into a :class:`ContractRevert` when it can be decoded."""
        data = revert_data(error)
        decoded = self.decode(data) if data else None
        if decoded is not None:
            return decoded
        return ChainError(f"transaction reverted: {error}")


def _abi_type(item: dict[str, Any]) -> str:
    if item["type"].startswith("tuple"):
        inner = ",".join(_abi_type(component) for component in item["components"])
        return f"({inner}){item['type'][len('tuple') :]}"
    return item["type"]


def revert_data(error: Exception) -> bytes | None:
    """The raw revert data carried by a web3 or eth-tester exception, if any.

    JSON-RPC nodes hand it to web3 as hex in ``ContractLogicError.data``; web3's eth-tester
    provider only keeps it in the message, as the ``repr`` of the bytes.
    """
    if isinstance(error, ContractLogicError) and isinstance(error.data, str) and error.data.startswith("0x"):
        return bytes.fromhex(error.data[2:])
    if isinstance(error, TransactionFailed) and error.args and isinstance(error.args[0], str):
        message = error.args[0]
        if message.startswith(_REVERTED_PREFIX + "b'") or message.startswith(_REVERTED_PREFIX + 'b"'):
            literal = ast.literal_eval(message[len(_REVERTED_PREFIX) :])
            return literal if isinstance(literal, bytes) else None
    return None
