"""Flower's own strategies, built by name from the tabular app's settings."""

from typing import Any

from flwr.serverapp import strategy as flower_strategies
from flwr.serverapp.strategy import Strategy

from tabular_app.settings import STRATEGY_PARAMETERS, FederationSettings


def build_strategy(settings: FederationSettings) -> Strategy:
    """The Flower strategy named in ``settings`` (one of ``STRATEGY_NAMES``, which the settings
    check), sampling as ``settings`` say, with the parameters ``STRATEGY_PARAMETERS`` lists for it."""
    sampling: dict[str, Any] = {
        "fraction_train": settings.fraction_train,
        "fraction_evaluate": settings.fraction_evaluate,
        "min_train_nodes": settings.min_nodes,
        "min_evaluate_nodes": settings.min_nodes if settings.fraction_evaluate > 0 else 0,
        "min_available_nodes": settings.min_nodes,
    }
    parameters = {
        keyword: getattr(settings, setting) for keyword, setting in STRATEGY_PARAMETERS[settings.strategy].items()
    }
    return getattr(flower_strategies, settings.strategy)(**sampling, **parameters)
