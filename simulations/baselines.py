"""The anchors federated accuracy is read against: one model trained on all sites' rows pooled,
and each site training alone — same model, same optimiser, same number of passes over the data."""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from fedledger.simulations.scenarios import PreparedData
from tabular_app.data import LabeledTable, load_table, train_test_split
from tabular_app.metrics import accuracy, roc_auc
from tabular_app.models import TabularClassifier
from tabular_app.preprocessing import Preprocessing
from tabular_app.schema import Schema
from tabular_app.settings import FederationSettings
from tabular_app.training import TrainingSettings, evaluate, train


@dataclass(frozen=True)
class Scores:
    """Accuracy and ROC-AUC on a set of test rows."""

    examples: int
    accuracy: float
    auc: float


@dataclass(frozen=True)
class Baselines:
    """Pooled training and each site alone, scored on every site's test rows and on all of them."""

    pooled: Scores
    pooled_by_site: list[Scores]
    alone: Scores
    alone_by_site: list[Scores]


def _site_splits(
    settings: FederationSettings, data: PreparedData
) -> tuple[Schema, list[tuple[LabeledTable, LabeledTable]]]:
    """Each site's train and test rows, split exactly as its client splits them."""
    schema = Schema.load(data.schema_path)
    splits = [
        train_test_split(load_table(data.site_path(index), schema), settings.test_fraction, settings.split_seed)
        for index in range(len(data.sites))
    ]
    return schema, splits


def _training(settings: FederationSettings) -> TrainingSettings:
    """One optimiser run with as many passes as the federation makes over each site's rows."""
    return TrainingSettings(
        local_epochs=settings.num_server_rounds * settings.local_epochs,
        batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        momentum=settings.momentum,
    )


def _scores(labels: np.ndarray, probabilities: np.ndarray) -> Scores:
    return Scores(len(labels), accuracy(labels, probabilities), roc_auc(labels, probabilities))


def baselines(settings: FederationSettings, data: PreparedData) -> Baselines:
    schema, splits = _site_splits(settings, data)
    passes = _training(settings)

    pooled_train = LabeledTable(
        pd.concat([train.features for train, _ in splits], ignore_index=True),
        np.concatenate([train.labels for train, _ in splits]),
    )
    preprocessing = Preprocessing.fit(schema, pooled_train)
    pooled = TabularClassifier.initialised(schema.num_features, settings.hidden_units, settings.model_seed)
    train(pooled, preprocessing.transform(pooled_train), pooled_train.labels, passes, settings.split_seed)
    pooled_results = [evaluate(pooled, preprocessing.transform(test), test.labels) for _, test in splits]

    alone_results = []
    for index, (site_train, site_test) in enumerate(splits):
        site_preprocessing = Preprocessing.fit(schema, site_train)
        model = TabularClassifier.initialised(schema.num_features, settings.hidden_units, settings.model_seed)
        train(model, site_preprocessing.transform(site_train), site_train.labels, passes, settings.split_seed + index)
        alone_results.append(evaluate(model, site_preprocessing.transform(site_test), site_test.labels))

    labels = np.concatenate([test.labels for _, test in splits])
    return Baselines(
        pooled=_scores(labels, np.concatenate([result.probabilities for result in pooled_results])),
        pooled_by_site=[Scores(r.examples, r.accuracy, r.auc) for r in pooled_results],
        alone=_scores(labels, np.concatenate([result.probabilities for result in alone_results])),
        alone_by_site=[Scores(r.examples, r.accuracy, r.auc) for r in alone_results],
    )
