"""What every ledger request shares, for ``ledger_mod``'s training and valuation paths: the fields
a reply is signed for, the metric keys a request names, the canonical hash of an ArrayRecord, and
the error reply to a request the mod cannot answer."""

from dataclasses import dataclass
from logging import ERROR

import numpy as np
from eth_utils import is_address
from flwr.app import ArrayRecord, ConfigRecord, Error, Message, MetricRecord
from flwr.common.constant import ErrorCode
from flwr.supercore import log

from fedledger import messages
from fedledger.encoding import model_hash
from fedledger.errors import FedLedgerError
from fedledger.signing import SigningDomain


class UnsignableReply(FedLedgerError):
    """A request or reply the ledger cannot sign: the message says what exactly is wrong."""


@dataclass(frozen=True)
class LedgerRequest:
    """What a ledger request asks a reply to be signed for: the registry's domain, the run and
    the round."""

    domain: SigningDomain
    run_id: int
    round: int

    @classmethod
    def of(cls, config: ConfigRecord) -> "LedgerRequest":
        """Raises:
        UnsignableReply: an entry is missing or of the wrong type.
        """
        return cls(
            domain=SigningDomain(
                _integer(config, messages.CONFIG_CHAIN_ID), _address(config, messages.CONFIG_REGISTRY)
            ),
            run_id=_integer(config, messages.CONFIG_RUN_ID),
            round=_integer(config, messages.CONFIG_ROUND),
        )


def metric_key(config: ConfigRecord, key: str, default: str | None = None) -> str:
    """The metric key name the request's ``key`` entry holds (``default`` when absent).

    Raises:
        UnsignableReply: the entry is not a non-empty str.
    """
    value = config.get(key, default)
    if not isinstance(value, str) or not value:
        raise UnsignableReply(f"the request's {key!r} must be a metric key name, got {value!r}")
    return value


def arrays_hash(record: ArrayRecord, whose: str) -> bytes:
    """The canonical hash of the record's arrays, read as NumPy arrays in name order; ``whose``
    names them in the error (``"the reply's"``)."""
    try:
        arrays: dict[str, np.ndarray] = {name: record[name].numpy() for name in sorted(record)}
        return model_hash(arrays)
    except Exception as error:  # an app's arrays may fail to read or encode in any way
        raise UnsignableReply(f"{whose} arrays cannot be hashed: {type(error).__name__}: {error}") from None


def only_metrics(reply: Message, what: str, holding: str) -> MetricRecord:
    """The reply's one MetricRecord, which must hold ``holding``; ``what`` names the reply in the
    error (``"reply"``)."""
    records = reply.content.metric_records
    if len(records) != 1:
        raise UnsignableReply(
            f"the {what} carries {len(records)} MetricRecords; the ledger needs exactly one, holding {holding!r}"
        )
    return next(iter(records.values()))


def error_reply(message: Message, reason: str) -> Message:
    """One log line, and an error reply the coordinator records as ``client-error``."""
    reason = f"ledger_mod: {reason}"
    log(ERROR, "%s", reason)
    return Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=reason), reply_to=message)


def _integer(config: ConfigRecord, key: str) -> int:
    value = config.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise UnsignableReply(f"the request's {key!r} must be a non-negative integer, got {value!r}")
    return value


def _address(config: ConfigRecord, key: str) -> str:
    value = config.get(key)
    if not isinstance(value, str) or not is_address(value):
        raise UnsignableReply(f"the request's {key!r} must be a contract address, got {value!r}")
    return value
