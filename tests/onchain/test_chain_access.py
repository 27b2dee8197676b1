"""The chain connection's own checks: addresses, which chain keeps a journal, and files replaced whole."""

from pathlib import Path

import pytest
from eth_tester import EthereumTester, PyEVMBackend
from web3 import EthereumTesterProvider, Web3

from fedledger.addresses import AddressError
from fedledger.chain import Chain
from fedledger.files import write_atomically

from helpers import participant_key


def wrong_checksum(address: str) -> str:
    """``address`` with the case of its first letter flipped: mixed case whose EIP-55 checksum is wrong."""
    index = next(i for i, char in enumerate(address) if i > 1 and char.isalpha())
    return address[:index] + address[index].swapcase() + address[index + 1 :]


def test_an_address_with_a_wrong_checksum_is_refused_before_anything_is_sent(chain: Chain):
    sender = chain.signers[0]
    receiver = participant_key(0).address
    block = chain.block_number
    for call in (
        lambda: chain.send_value(sender, wrong_checksum(receiver), 1),
        lambda: chain.send_value(wrong_checksum(sender), receiver, 1),
        lambda: chain.balance(wrong_checksum(receiver)),
    ):
        with pytest.raises(AddressError, match="has a wrong EIP-55 checksum"):
            call()
    assert chain.block_number == block
    chain.send_value(sender, receiver.lower(), 1)  # all lowercase carries no checksum: taken as it is
    assert chain.balance(receiver) == 1


def test_the_in_process_chain_is_known_by_its_provider_not_by_its_description(tmp_path: Path):
    named_otherwise = Chain(Web3(EthereumTesterProvider(EthereumTester(PyEVMBackend()))), "a test EVM")
    assert named_otherwise.is_in_process and Chain.in_process().is_in_process
    named_otherwise.journal_to(tmp_path / "chain.jsonl")
    assert named_otherwise.journal == tmp_path / "chain.jsonl"


def test_a_file_written_atomically_is_replaced_whole_and_leaves_nothing_beside_it(tmp_path: Path):
    path = tmp_path / "state.json"
    write_atomically(path, b"first")
    write_atomically(path, b"second")
    assert path.read_bytes() == b"second"
    assert sorted(tmp_path.iterdir()) == [path]


def test_a_failed_atomic_write_leaves_the_old_file_as_it_was(tmp_path: Path):
    path = tmp_path / "state.json"
    write_atomically(path, b"first")
    with pytest.raises(TypeError):
        write_atomically(path, "not bytes")  # type: ignore[arg-type]
    assert path.read_bytes() == b"first"
    assert sorted(tmp_path.iterdir()) == [path]
