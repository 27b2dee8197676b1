"""logreg: a Flower / NumPy app."""
