"""Shared fixtures: the shipped models, loaded once per test session."""

from __future__ import annotations

import os

# No model hub is reachable in tests: fail fast instead of retrying the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(scope="session")
def classifier():
    from evaluators.zoo import load_model

    return load_model("digits-classifier")


@pytest.fixture(scope="session")
def dit():
    """The shipped DiT; tests that apply plans to it remove them again."""
    from evaluators.zoo import load_model

    return load_model("digits-dit")


@pytest.fixture(scope="session")
def unet():
    """The shipped U-Net; tests that apply plans to it remove them again."""
    from evaluators.zoo import load_model

    return load_model("digits-unet")


@pytest.fixture(scope="session")
def digits():
    from evaluators.data import load_digits

    return load_digits()


@pytest.fixture(autouse=True)
def _fixed_threads():
    torch.set_num_threads(min(2, os.cpu_count() or 1))
