"""Subcommands of `slayer`, one module per domain; each stays thin."""
