"""digitscnn: the model, the data of one site, and local training and testing."""

from functools import cache

import numpy as np
import torch
from datasets import Dataset
from flwr_datasets.partitioner import IidPartitioner
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class Net(nn.Module):
    """Two convolutions and a linear layer: 8x8 grey images in, ten digit scores out."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(32 * 2 * 2, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        return self.fc(torch.flatten(x, 1))


@cache
def partitioner(num_partitions: int) -> IidPartitioner:
    """The 1,797 digits (they ship inside scikit-learn) split evenly over ``num_partitions`` sites."""
    digits = load_digits()
    partitioner = IidPartitioner(num_partitions=num_partitions)
    partitioner.dataset = Dataset.from_dict({"image": digits.images.astype(np.float32), "label": digits.target})
    return partitioner


def load_data(partition_id: int, num_partitions: int, batch_size: int) -> tuple[DataLoader, DataLoader]:
    """This site's digits: 80% to train on, 20% to test on."""
    partition = partitioner(num_partitions).load_partition(partition_id)
    split = partition.train_test_split(test_size=0.2, seed=42)
    train_set, test_set = (_tensors(split[name]) for name in ("train", "test"))
    return DataLoader(train_set, batch_size=batch_size, shuffle=True), DataLoader(test_set, batch_size=batch_size)


def _tensors(dataset: Dataset) -> TensorDataset:
    images = torch.tensor(np.asarray(dataset["image"], dtype=np.float32)).unsqueeze(1) / 16.0
    return TensorDataset(images, torch.tensor(dataset["label"]))


def train(net: Net, trainloader: DataLoader, epochs: int, lr: float, device: torch.device) -> float:
    """Train ``net`` with SGD; returns the mean training loss."""
    net.to(device)
    net.train()
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    total_loss, batches = 0.0, 0
    for _ in range(epochs):
        for images, labels in trainloader:
            optimizer.zero_grad()
            loss = criterion(net(images.to(device)), labels.to(device))
            loss.backward()
            optimizer.step()
            total_loss += loss.item()
            batches += 1
    return total_loss / batches


def test(net: Net, testloader: DataLoader, device: torch.device) -> tuple[float, float]:
    """Mean loss and accuracy of ``net`` on ``testloader``."""
    net.to(device)
    net.eval()
    criterion = nn.CrossEntropyLoss(reduction="sum")
    loss, correct = 0.0, 0
    with torch.no_grad():
        for images, labels in testloader:
            outputs = net(images.to(device))
            loss += criterion(outputs, labels.to(device)).item()
            correct += (outputs.argmax(dim=1) == labels.to(device)).sum().item()
    examples = len(testloader.dataset)
    return loss / examples, correct / examples
