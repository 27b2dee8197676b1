"""Local training and evaluation of the model on a site's own rows."""

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from tabular_app.metrics import accuracy, roc_auc


@dataclass(frozen=True)
class TrainingSettings:
    """How a site trains in one round.

    Attributes:
        local_epochs: passes over the site's training rows per round.
        batch_size: rows per optimiser step.
        learning_rate: SGD step size.
        momentum: SGD momentum.
        proximal_mu: FedProx's proximal weight; 0 trains plain local SGD.
    """

    local_epochs: int = 1
    batch_size: int = 32
    learning_rate: float = 0.05
    momentum: float = 0.9
    proximal_mu: float = 0.0


@dataclass(frozen=True)
class Evaluation:
    """How a model does on a set of rows, and the probabilities it gave them."""

    examples: int
    loss: float
    accuracy: float
    auc: float
    probabilities: np.ndarray


def train(model: nn.Module, inputs: np.ndarray, labels: np.ndarray, settings: TrainingSettings, seed: int) -> float:
    """Train ``model`` in place on the rows; returns the mean loss over the last epoch."""
    features, targets = torch.from_numpy(inputs), torch.from_numpy(labels)
    global_weights = [parameter.detach().clone() for parameter in model.parameters()]
    optimiser = torch.optim.SGD(model.parameters(), lr=settings.learning_rate, momentum=settings.momentum)
    loss_function = nn.BCEWithLogitsLoss()
    generator = torch.Generator().manual_seed(seed)
    model.train()
    epoch_loss = float("nan")
    for _ in range(settings.local_epochs):
        order = torch.randperm(len(targets), generator=generator)
        total, seen = 0.0, 0
        for start in range(0, len(order), settings.batch_size):
            batch = order[start : start + settings.batch_size]
            optimiser.zero_grad()
            loss = loss_function(model(features[batch]), targets[batch])
            if settings.proximal_mu > 0:
                distance = sum(
                    torch.sum((parameter - start_weights) ** 2)
                    for parameter, start_weights in zip(model.parameters(), global_weights, strict=True)
                )
                loss = loss + settings.proximal_mu / 2 * distance
            loss.backward()
            optimiser.step()
            total += loss.item() * len(batch)
            seen += len(batch)
        epoch_loss = total / seen
    return epoch_loss


@torch.no_grad()
def evaluate(model: nn.Module, inputs: np.ndarray, labels: np.ndarray) -> Evaluation:
    """Loss, accuracy and ROC-AUC of ``model`` on the rows."""
    model.eval()
    logits = model(torch.from_numpy(inputs))
    loss = nn.functional.binary_cross_entropy_with_logits(logits, torch.from_numpy(labels)).item()
    probabilities = torch.sigmoid(logits).numpy().astype(np.float64)
    return Evaluation(len(labels), loss, accuracy(labels, probabilities), roc_auc(labels, probabilities), probabilities)
