"""Session-wide settings of the test process (fixtures of one package live in its own conftest)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread_per_session() -> Iterator[None]:
    """Run the whole session on one intra-op torch thread; restore the setting at the end.

    The tests use tiny tensors, where a second OpenMP thread adds synchronisation and spin-waiting
    rather than speed; with another job on the same 2 cores, tests/ssr_models and tests/eval took
    153 s of CPU on torch's default of one thread per core and 89 s on one. This is a speed
    default only: tests whose assertions need one thread (bitwise reproducibility in
    tests/ssr_models) still set it themselves, the tests about threads set the count they check
    (test_pipeline), and child processes start with torch's default (test_cluster's workers).
    """
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
