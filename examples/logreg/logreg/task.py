"""logreg: logistic regression in NumPy, and one site's share of scikit-learn's breast-cancer data."""

from dataclasses import dataclass

import numpy as np
from sklearn.datasets import load_breast_cancer

Arrays = dict[str, np.ndarray]


@dataclass(frozen=True)
class SiteData:
    """A site's records, standardised with the mean and spread of its own training rows."""

    train_features: np.ndarray
    train_labels: np.ndarray
    test_features: np.ndarray
    test_labels: np.ndarray


def initial_arrays() -> Arrays:
    """The model before training: zero weights for the 30 features, and a zero bias."""
    return {"bias": np.zeros(1), "weights": np.zeros(load_breast_cancer().data.shape[1])}


def load_data(partition_id: int, num_partitions: int) -> SiteData:
    """Site ``partition_id``'s share of the 569 records (they ship inside scikit-learn): 80% to train on,
    20% to test on."""
    data = load_breast_cancer()
    order = np.random.default_rng(0).permutation(len(data.target))
    rows = np.array_split(order, num_partitions)[partition_id]
    cut = int(0.8 * len(rows))
    train_rows, test_rows = rows[:cut], rows[cut:]
    mean = data.data[train_rows].mean(axis=0)
    spread = data.data[train_rows].std(axis=0) + 1e-9
    return SiteData(
        train_features=(data.data[train_rows] - mean) / spread,
        train_labels=data.target[train_rows].astype(np.float64),
        test_features=(data.data[test_rows] - mean) / spread,
        test_labels=data.target[test_rows].astype(np.float64),
    )


def predict(arrays: Arrays, features: np.ndarray) -> np.ndarray:
    """The probability of the positive class (benign) for each row."""
    return 1.0 / (1.0 + np.exp(-(features @ arrays["weights"] + arrays["bias"])))


def log_loss(arrays: Arrays, features: np.ndarray, labels: np.ndarray) -> float:
    probabilities = np.clip(predict(arrays, features), 1e-12, 1 - 1e-12)
    return float(-np.mean(labels * np.log(probabilities) + (1 - labels) * np.log(1 - probabilities)))


def train(arrays: Arrays, data: SiteData, epochs: int, lr: float) -> tuple[Arrays, float]:
    """``epochs`` steps of full-batch gradient descent on the log loss; returns the new arrays and their loss."""
    weights, bias = arrays["weights"].copy(), arrays["bias"].copy()
    features, labels = data.train_features, data.train_labels
    for _ in range(epochs):
        error = predict({"weights": weights, "bias": bias}, features) - labels
        weights -= lr * features.T @ error / len(labels)
        bias -= lr * np.mean(error, keepdims=True)
    trained = {"bias": bias, "weights": weights}
    return trained, log_loss(trained, features, labels)


def test(arrays: Arrays, data: SiteData) -> tuple[float, float]:
    """Log loss and accuracy on the site's test rows."""
    predicted = predict(arrays, data.test_features) >= 0.5
    accuracy = float(np.mean(predicted == (data.test_labels == 1)))
    return log_loss(arrays, data.test_features, data.test_labels), accuracy
