"""The in-process EVM's gas estimate, in two runs of the call instead of a binary search.

py-evm estimates gas by bisecting between the intrinsic gas and the block gas limit, running the
call a dozen times or more; on the in-process chain that is most of what a transaction costs.
:func:`two_run_estimate` runs the call once at the block gas limit, takes the gas it consumed
before refunds and adds a fifth (room for the 1/64 that every nested call withholds), and runs
it again at that limit to confirm it; only if that run fails does it fall back to the bisection.
The estimate is a gas limit, not a price: a transaction is charged the gas it uses.
"""

from typing import cast

from eth.abc import SignedTransactionAPI, StateAPI
from eth.estimators.gas import binary_gas_search_intrinsic_tolerance
from eth.vm.spoof import SpoofTransaction

_MARGIN = 1.2


def two_run_estimate(state: StateAPI, transaction: SignedTransactionAPI) -> int:
    """A gas limit under which ``transaction`` succeeds on ``state``, at most the block gas limit.

    Raises:
        VMError: the transaction fails even with the block gas limit (a revert, decoded by the caller).
    """
    consumed = _consumed(state, transaction, state.gas_limit)
    if isinstance(consumed, BaseException):
        raise consumed
    limit = min(state.gas_limit, int(consumed * _MARGIN))
    if isinstance(_consumed(state, transaction, limit), int):
        return limit
    return binary_gas_search_intrinsic_tolerance(state, transaction)


def _consumed(state: StateAPI, transaction: SignedTransactionAPI, gas: int) -> int | BaseException:
    """The gas ``transaction`` consumes before refunds when given ``gas``, or the error it fails
    with; the state is left as it was."""
    spoofed = cast(SignedTransactionAPI, SpoofTransaction(transaction, gas=gas, gas_price=0))
    snapshot = state.snapshot()
    try:
        computation = state.apply_transaction(spoofed)
        return computation.error if computation.is_error else gas - computation.get_gas_remaining()
    finally:
        state.revert(snapshot)
