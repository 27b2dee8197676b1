"""digitscnn: a Flower / PyTorch app."""
