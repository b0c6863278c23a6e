"""The workbench listens on 127.0.0.1 unless a user asks otherwise (Streamlit's own default is every interface)."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_streamlit_config_binds_to_localhost():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"


def test_make_app_binds_to_localhost():
    line = next(line for line in (ROOT / "Makefile").read_text().splitlines() if "streamlit run" in line)
    assert "--server.address 127.0.0.1" in line
