"""Flower's own strategies, built by name from the federation settings."""

from typing import Any

from flwr.serverapp.strategy import (
    Bulyan,
    FedAdagrad,
    FedAdam,
    FedAvg,
    FedAvgM,
    FedMedian,
    FedProx,
    FedTrimmedAvg,
    FedYogi,
    Krum,
    MultiKrum,
    Strategy,
)

from coordinator.settings import FederationSettings


def build_strategy(settings: FederationSettings) -> Strategy:
    """The Flower strategy named in ``settings`` (one of ``STRATEGY_NAMES``, which the settings check),
    with its parameters from ``settings``."""
    sampling: dict[str, Any] = {
        "fraction_train": settings.fraction_train,
        "fraction_evaluate": settings.fraction_evaluate,
        "min_train_nodes": settings.min_nodes,
        "min_evaluate_nodes": settings.min_nodes if settings.fraction_evaluate > 0 else 0,
        "min_available_nodes": settings.min_nodes,
    }
    server_optimiser = {"eta": settings.server_learning_rate, "eta_l": settings.learning_rate}
    builders = {
        "FedAvg": lambda: FedAvg(**sampling),
        "FedProx": lambda: FedProx(**sampling, proximal_mu=settings.proximal_mu),
        "FedAdam": lambda: FedAdam(**sampling, **server_optimiser),
        "FedYogi": lambda: FedYogi(**sampling, **server_optimiser),
        "FedAdagrad": lambda: FedAdagrad(**sampling, **server_optimiser),
        "FedAvgM": lambda: FedAvgM(**sampling, server_momentum=settings.server_momentum),
        "FedMedian": lambda: FedMedian(**sampling),
        "FedTrimmedAvg": lambda: FedTrimmedAvg(**sampling, beta=settings.trim_beta),
        "Krum": lambda: Krum(**sampling, num_malicious_nodes=settings.num_malicious_nodes),
        "MultiKrum": lambda: MultiKrum(
            **sampling,
            num_malicious_nodes=settings.num_malicious_nodes,
            num_nodes_to_select=settings.num_nodes_to_select,
        ),
        "Bulyan": lambda: Bulyan(**sampling, num_malicious_nodes=settings.num_malicious_nodes),
    }
    return builders[settings.strategy]()


def describe_strategy(strategy: Strategy) -> dict[str, Any]:
    """The strategy's class name and its scalar parameters, as recorded in manifests."""
    params = {
        name: value
        for name, value in sorted(vars(strategy).items())
        if not name.startswith("_") and isinstance(value, bool | int | float | str)
    }
    return {"name": type(strategy).__name__, "params": params}
