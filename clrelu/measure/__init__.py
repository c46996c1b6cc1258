"""Pure measurements: metrics on the accuracy matrix, activation diagnostics, plasticity."""
