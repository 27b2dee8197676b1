"""JSON-RPC over HTTP that rides out node outages: transient transport failures are retried.

A node that restarts, a proxy answering 502 while it does, a dropped connection: each is a
transport failure, retried with exponential backoff for up to ``retry_seconds``. An answer from the
node, even an error (a revert, invalid params), is never retried, nor is an HTTP error that says the
request itself is wrong (4xx: a wrong path, a body too large). ``eth_sendRawTransaction`` is
the one request sent only once: whether a transaction reached the node is decided by looking it up
by hash (:class:`~fedledger.chain.connection.Chain` does), not by sending it blindly again.
"""

import logging
import re
import time
from collections.abc import Callable
from typing import Any, TypeVar

import requests
from web3 import HTTPProvider
from web3.types import RPCEndpoint, RPCResponse

from fedledger.chain.errors import ChainError

#: How long a JSON-RPC call keeps retrying a node that does not answer, by default.
DEFAULT_RETRY_SECONDS = 120.0
#: How long one HTTP request may take before it counts as unanswered.
REQUEST_TIMEOUT_SECONDS = 30.0
FIRST_RETRY_DELAY_SECONDS = 0.1
MAX_RETRY_DELAY_SECONDS = 5.0
SENT_ONCE = frozenset({"eth_sendRawTransaction"})

logger = logging.getLogger("fedledger.chain")
Result = TypeVar("Result")


class ChainUnavailable(ChainError):
    """The node did not answer for the whole retry budget."""


class SendInterrupted(ChainError):
    """The transport failed while a transaction was being sent: the node may or may not have it."""


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` is a transport failure worth retrying (not an answer from the node)."""
    if isinstance(error, requests.HTTPError):
        status = error.response.status_code if error.response is not None else None
        return status is not None and (status >= 500 or status == 429)
    return isinstance(error, requests.ConnectionError | requests.Timeout | requests.exceptions.ChunkedEncodingError)


def describe(error: BaseException) -> str:
    """A few words for a transport failure, instead of requests' nested reprs."""
    if isinstance(error, requests.HTTPError) and error.response is not None:
        return f"HTTP {error.response.status_code}"
    if isinstance(error, requests.Timeout):
        return "no answer in time"
    text = str(error)
    if found := re.search(r"\[Errno -?\d+\] ([^'\")]+)", text):
        return found.group(1).strip().lower()
    if "RemoteDisconnected" in text or "Connection aborted" in text:
        return "connection closed without an answer"
    return type(error).__name__


class RetryingHTTPProvider(HTTPProvider):
    """web3's HTTP provider with a time budget for outages instead of web3's own retry list.

    One warning is logged when the node stops answering and one when it answers again. A call that
    outlasts ``retry_seconds`` raises :class:`ChainUnavailable`. Meant for one thread at a time, as
    a :class:`~fedledger.chain.connection.Chain` is used.
    """

    def __init__(self, url: str, retry_seconds: float = DEFAULT_RETRY_SECONDS) -> None:
        super().__init__(url, request_kwargs={"timeout": REQUEST_TIMEOUT_SECONDS}, exception_retry_configuration=None)
        if retry_seconds < 0:
            raise ChainError(f"the retry budget must be zero or more seconds, not {retry_seconds}")
        self.url = url
        self.retry_seconds = retry_seconds
        self._outage_started: float | None = None

    def check_answers(self) -> None:
        """Ask the node for its chain id once, without retrying: for a first contact, where a node
        that does not answer is more likely a wrong URL than an outage.

        Raises:
            ChainError: nothing answers JSON-RPC at the URL.
        """
        try:
            HTTPProvider.make_request(self, RPCEndpoint("eth_chainId"), [])
        except requests.RequestException as error:
            raise ChainError(f"no Ethereum JSON-RPC node answers at {self.url} ({describe(error)})") from None
        except ValueError:
            raise ChainError(f"{self.url} does not answer JSON-RPC") from None

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        if method in SENT_ONCE:
            try:
                response = super().make_request(method, params)
            except requests.RequestException as error:
                if not is_transient(error):
                    raise self._refused(method, error) from None
                raise SendInterrupted(f"sending to {self.url} failed: {describe(error)}") from None
            self._answered()
            return response
        return self._retrying(method, lambda: super(RetryingHTTPProvider, self).make_request(method, params))

    def make_batch_request(self, requests_: list[tuple[RPCEndpoint, Any]]) -> list[RPCResponse] | RPCResponse:
        """Send a batch with the same retries as a single call.

        A guard, kept on purpose: FedLedger itself sends no batches, but anyone holding
        ``Chain.w3`` can (``w3.batch_requests()``), and web3 alone would not retry one at all. A
        batch holding ``eth_sendRawTransaction`` is refused: a retry would send it again.
        """
        if any(method in SENT_ONCE for method, _ in requests_):
            raise ChainError(f"{', '.join(sorted(SENT_ONCE))} is not sent in a batch: it must be sent exactly once")
        batch = f"a batch ({', '.join(method for method, _ in requests_)})"
        return self._retrying(batch, lambda: super(RetryingHTTPProvider, self).make_batch_request(requests_))

    def _refused(self, method: str, error: requests.RequestException) -> ChainError:
        """A request refused for good without a JSON-RPC answer (by the node or a proxy before it)."""
        if isinstance(error, requests.HTTPError) and error.response is not None:
            response = error.response
            return ChainError(f"{self.url} answered {method} with HTTP {response.status_code} {response.reason}")
        return ChainError(f"{method} to {self.url} failed: {describe(error)}")

    def _retrying(self, method: str, request: Callable[[], Result]) -> Result:
        deadline: float | None = None
        delay = FIRST_RETRY_DELAY_SECONDS
        while True:
            try:
                result = request()
            except requests.RequestException as error:
                if not is_transient(error):
                    raise self._refused(method, error) from None
                now = time.monotonic()
                if self._outage_started is None:
                    self._outage_started = now
                    logger.warning(
                        "node at %s not answering (%s); retrying for up to %g s",
                        self.url,
                        describe(error),
                        self.retry_seconds,
                    )
                deadline = deadline if deadline is not None else now + self.retry_seconds
                if now >= deadline:
                    raise ChainUnavailable(
                        f"node at {self.url} did not answer for {self.retry_seconds:g} s ({describe(error)})"
                    ) from None
                time.sleep(min(delay, deadline - now))
                delay = min(2 * delay, MAX_RETRY_DELAY_SECONDS)
                continue
            self._answered()
            return result

    def _answered(self) -> None:
        if self._outage_started is not None:
            logger.warning("node at %s answering again after %.1f s", self.url, time.monotonic() - self._outage_started)
            self._outage_started = None
