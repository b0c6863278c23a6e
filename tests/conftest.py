"""Shared fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_chat_model_dir(tmp_path_factory) -> Path:
    """A saved Qwen2-style chat model (``sgpo_lab.toy``): byte-level BPE, ChatML template, two end ids. Read-only."""
    from sgpo_lab.toy import save_toy_model

    return save_toy_model(tmp_path_factory.mktemp("tiny_chat_model"))
