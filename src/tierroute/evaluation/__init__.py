"""Outcome data, training, replay, metrics and plots for learned routers (training needs the ``train`` extra)."""
