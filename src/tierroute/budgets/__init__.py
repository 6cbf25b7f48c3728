"""Spend and abuse controls: budgets, rate limits and runaway-loop protection over a state store."""
