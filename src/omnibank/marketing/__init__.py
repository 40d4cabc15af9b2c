"""Precision marketing (K5, B2): point-in-time features, propensity and uplift models, ranked call lists."""
