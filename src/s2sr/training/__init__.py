"""Training and evaluation of the DSen2 weights (training-only dependencies are imported lazily)."""
