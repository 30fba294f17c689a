"""Use cases: each one orchestrates the domain rules and the adapters."""
