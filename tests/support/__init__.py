"""Shared test helpers (not collected: no test_ module here). Fixtures stay
in tests/conftest.py; payment set-ups are in ``tests.support.payments``."""
from .data import add_pack, add_price, add_usage, worked_example_prices, worked_example_seed
from .services import IN_CI, PASSWORD, failures, missing_service, run_concurrently, utc

__all__ = ["IN_CI", "PASSWORD", "add_pack", "add_price", "add_usage", "failures", "missing_service",
           "run_concurrently", "utc", "worked_example_prices", "worked_example_seed"]
