"""The sgpo-lab workbench: a thin router. Run with ``streamlit run app/main.py`` (or ``make app``).

The sidebar holds the one setting every page shares, the runs root (default: the shipped
``demo_runs/``, or ``$SGPO_LAB_RUNS``). Each page is a short script under ``pages/`` that calls
``sgpo_lab``; ``common.py`` holds the cached loaders.
"""

import sys
from pathlib import Path

import streamlit as st

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # `streamlit run` adds it; AppTest does not
    sys.path.insert(0, str(HERE))

import common  # noqa: E402

# Emoji icons, not ":material/...:" ones: a material icon as favicon is fetched from fonts.gstatic.com (not offline).
st.set_page_config(page_title="sgpo-lab", page_icon="🧪", layout="wide")

if "runs_root" not in st.session_state:
    st.session_state.runs_root = common.default_runs_root()
st.sidebar.text_input("Runs root", key="runs_root",
                      help="A folder of run directories (each written by `sgpo-lab train --out ...`). "
                           "Default: the shipped demo runs, or $SGPO_LAB_RUNS.")

pages = [
    st.Page("pages/runs.py", title="Runs", icon=":material/monitoring:", default=True),
    st.Page("pages/explore.py", title="Explore", icon=":material/biotech:"),
    st.Page("pages/weights.py", title="Weights", icon=":material/balance:"),
    st.Page("pages/absorption.py", title="Absorption", icon=":material/water_drop:"),
    st.Page("pages/compare.py", title="Compare", icon=":material/table_chart:"),
    st.Page("pages/train.py", title="Train", icon=":material/play_circle:"),
]
st.navigation(pages).run()
st.sidebar.caption("SGPO: a weak model learns *how to reason* by distilling the shift a strategy card induces "
                   "in its own next-token distribution.")
