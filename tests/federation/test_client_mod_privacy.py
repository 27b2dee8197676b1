"""``ledger_mod`` under local differential privacy: it clips and noises what the app trained, signs
the parameters it applied, and the coordinator takes exactly the run's parameters.

Real Flower ClientApps and Messages, real keys and EIP-712 signatures; the coordinator's own checks
judge every reply.
"""

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from site_requests import DOMAIN, ROUND, RUN_ID, SITE, error_of, ledger_config, node

from fedledger import messages
from fedledger.client import ledger_mod
from fedledger.client.mod import NODE_MIN_NOISE_MULTIPLIER
from fedledger.coordinator.validation import RoundContext, check_reply
from fedledger.encoding import model_hash
from fedledger.privacy import NoiseTest, delta_norm
from fedledger.signing import UpdateMessage, recover_update_signer

BASE = {"w": np.zeros(4000, np.float32), "steps": np.array([3], np.int64)}
CLIP, NOISE = 500_000, 2_000_000  # 0.5 and 2.0, in millionths
STEP = np.float32(0.1)  # what training adds to every weight: a change of norm 0.1 * sqrt(4000) ≈ 6.3


def registered(address: str) -> str | None:
    return None if address == SITE.address else "unregistered"


def app() -> ClientApp:
    client = ClientApp(mods=[ledger_mod])

    @client.train()
    def train(message: Message, context: Context) -> Message:
        received = message.content[messages.ARRAYS_RECORD]
        trained = {"w": received["w"].numpy() + STEP, "steps": received["steps"].numpy() + 1}
        content = RecordDict({messages.ARRAYS_RECORD: ArrayRecord({k: Array(v) for k, v in trained.items()})})
        content[messages.METRICS_RECORD] = MetricRecord({messages.NUM_EXAMPLES: 20})
        return Message(content, reply_to=message)

    return client


def private_request(clip: int | None = CLIP, noise: int | None = NOISE) -> Message:
    config = ledger_config()
    for key, value in ((messages.CONFIG_DP_CLIP_NORM, clip), (messages.CONFIG_DP_NOISE_MULTIPLIER, noise)):
        if value is not None:
            config[key] = value
    arrays = ArrayRecord({name: Array(value) for name, value in BASE.items()})
    return Message(
        RecordDict({messages.ARRAYS_RECORD: arrays, messages.CONFIG_RECORD: config}),
        dst_node_id=11,
        message_type="train",
    )


def context(local_privacy: tuple[int, int]) -> RoundContext:
    return RoundContext(DOMAIN, RUN_ID, ROUND, model_hash(BASE), BASE, local_privacy=local_privacy)


def sent_arrays(reply: Message) -> dict[str, np.ndarray]:
    return {name: array.numpy() for name, array in reply.content[messages.ARRAYS_RECORD].items()}


def test_the_update_is_clipped_noised_and_signed_with_the_parameters_applied():
    reply = app()(private_request(), node())
    arrays = sent_arrays(reply)
    assert arrays["steps"].tolist() == [4]  # integer arrays are neither clipped nor noised
    clipped_part = np.full(4000, STEP, np.float64) * (0.5 / (0.1 * np.sqrt(4000)))
    noise = {"w": (arrays["w"].astype(np.float64) - clipped_part).astype(np.float32)}
    assert NoiseTest.of(noise, 2.0 * 0.5).passed
    assert delta_norm(BASE, arrays) > 0.5  # the noise, not only the clipped change, left the site

    ledger = reply.content[messages.LEDGER_RECORD]
    assert (ledger[messages.SIGNED_CLIP_NORM], ledger[messages.SIGNED_NOISE_MULTIPLIER]) == (CLIP, NOISE)
    message = UpdateMessage(RUN_ID, ROUND, model_hash(BASE), model_hash(arrays), 20, CLIP, NOISE)
    assert recover_update_signer(DOMAIN, message, ledger[messages.SIGNATURE]) == SITE.address

    checked = check_reply(reply, context((CLIP, NOISE)), registered)
    assert checked.accepted, checked.detail
    assert (checked.signed.clip_norm, checked.signed.noise_multiplier) == (CLIP, NOISE)


def test_the_signature_covers_the_parameters():
    reply = app()(private_request(), node())
    plain = UpdateMessage(RUN_ID, ROUND, model_hash(BASE), model_hash(sent_arrays(reply)), 20)
    signature = reply.content[messages.LEDGER_RECORD][messages.SIGNATURE]
    assert recover_update_signer(DOMAIN, plain, signature) != SITE.address


@pytest.mark.parametrize(
    ("run_parameters", "detail"),
    [
        (
            (CLIP, 4_000_000),
            "signed as local DP with clip norm 0.5 and noise multiplier 2; this run takes local DP "
            "with clip norm 0.5 and noise multiplier 4",
        ),
        ((0, 0), "this run takes no local DP"),
    ],
)
def test_the_coordinator_takes_only_the_runs_parameters(run_parameters, detail):
    checked = check_reply(app()(private_request(), node()), context(run_parameters), registered)
    assert checked.reason == "wrong-privacy" and detail in checked.detail


def test_an_update_without_local_dp_is_refused_in_a_local_dp_run():
    reply = app()(private_request(None, None), node())
    assert messages.SIGNED_NOISE_MULTIPLIER not in reply.content[messages.LEDGER_RECORD]
    checked = check_reply(reply, context((CLIP, NOISE)), registered)
    assert checked.reason == "wrong-privacy" and "signed as no local DP" in checked.detail


def test_a_site_with_a_noise_floor_refuses_a_request_for_less_before_training():
    site = node(**{NODE_MIN_NOISE_MULTIPLIER: 3.0})
    for request, asked in ((private_request(), "noise multiplier 2.0"), (private_request(None, None), "no local DP")):
        reason = error_of(app()(request, site))
        assert f"noise multiplier of at least 3.0 (node config {NODE_MIN_NOISE_MULTIPLIER!r})" in reason
        assert f"the request asks for {asked}" in reason
    assert not app()(private_request(CLIP, 3_000_000), site).has_error()


@pytest.mark.parametrize(("clip", "noise"), [(CLIP, None), (None, NOISE), (-1, NOISE), (CLIP, 1.5)])
def test_malformed_parameters_become_an_error_reply(clip, noise):
    reason = error_of(app()(private_request(clip, noise), node()))
    assert reason.startswith("ledger_mod: ") and ("local-DP" in reason or "fedledger.dp-" in reason)


def test_an_app_that_changes_the_model_layout_cannot_be_clipped():
    client = ClientApp(mods=[ledger_mod])

    @client.train()
    def train(message: Message, context: Context) -> Message:
        content = RecordDict({messages.ARRAYS_RECORD: ArrayRecord({"other": Array(np.ones(2, np.float32))})})
        content[messages.METRICS_RECORD] = MetricRecord({messages.NUM_EXAMPLES: 20})
        return Message(content, reply_to=message)

    assert "cannot be clipped" in error_of(client(private_request(), node()))


def test_a_plain_request_is_signed_as_before():
    reply = app()(private_request(None, None), node())
    ledger = reply.content[messages.LEDGER_RECORD]
    assert messages.SIGNED_CLIP_NORM not in ledger
    assert check_reply(reply, context((0, 0)), registered).accepted
    assert isinstance(ledger, ConfigRecord)
