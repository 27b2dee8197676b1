"""The participant's Flower ClientApp: local training, data loading and update signing."""
