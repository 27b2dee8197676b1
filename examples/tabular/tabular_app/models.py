"""The model participants train, and its conversion to and from named numpy arrays."""

import numpy as np
import torch
from torch import nn


class TabularClassifier(nn.Module):
    """A binary classifier for tabular inputs: one hidden ReLU layer, one logit out."""

    def __init__(self, num_features: int, hidden_units: int) -> None:
        super().__init__()
        self.hidden = nn.Linear(num_features, hidden_units)
        self.output = nn.Linear(hidden_units, 1)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.output(torch.relu(self.hidden(inputs))).squeeze(-1)

    @classmethod
    def initialised(cls, num_features: int, hidden_units: int, seed: int) -> "TabularClassifier":
        """A fresh model whose weights depend only on its shape and ``seed``, so anyone can re-create it."""
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return cls(num_features, hidden_units)

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "TabularClassifier":
        """A model shaped after, and loaded with, ``arrays``."""
        hidden_units, num_features = arrays["hidden.weight"].shape
        model = cls(num_features, hidden_units)
        load_arrays(model, arrays)
        return model


def model_arrays(model: nn.Module) -> dict[str, np.ndarray]:
    """The model's parameters and buffers as named numpy arrays (copies)."""
    return {name: tensor.detach().cpu().numpy().copy() for name, tensor in model.state_dict().items()}


def load_arrays(model: nn.Module, arrays: dict[str, np.ndarray]) -> None:
    """Load ``arrays`` into ``model``, cast to the model's dtypes; names and shapes must match exactly."""
    state = model.state_dict()
    if set(arrays) != set(state):
        raise ValueError(f"arrays {sorted(arrays)} do not match the model's {sorted(state)}")
    model.load_state_dict(
        {
            name: torch.from_numpy(
                np.array(array, dtype=np.float32 if state[name].is_floating_point() else array.dtype)
            )
            for name, array in arrays.items()
        },
        strict=True,
    )
