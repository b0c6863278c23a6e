"""The sgpo-lab workbench: a thin router. Run with ``streamlit run app/main.py`` (or ``make app``).

The sidebar holds what every page shares: the runs root (default: the shipped ``demo_runs/``, or
``$SGPO_LAB_RUNS``; kept in the URL as ``?root=`` so a reload keeps it), the theme (figures follow it) and
presentation mode. The app opens on the Start page (SGPO's story in five steps). Each page is a short script under
``views/`` (not ``pages/``: Streamlit would also serve those as pages of their own, without this router, to a
first visitor of a page address) that calls ``sgpo_lab``; ``common.py`` holds the cached loaders.
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

common.from_url(common.QP_ROOT, "theme", "presentation", flags=("presentation",))
if common.QP_ROOT in st.session_state:  # a root from the address (a reload, a shared link)
    st.session_state.runs_root = st.session_state.pop(common.QP_ROOT)
if "runs_root" not in st.session_state:
    st.session_state.runs_root = common.default_runs_root()
if st.session_state.get("theme") not in (None, "auto", "light", "dark"):
    st.session_state.theme = "auto"
st.sidebar.text_input("Runs root", key="runs_root",
                      help="A folder of run directories (each written by `sgpo-lab train --out ...`). "
                           "Default: the shipped demo runs, or $SGPO_LAB_RUNS. Kept in the address (?root=), so a "
                           "reload or a shared link keeps it.")
common.keep_root_in_url()

pages = [
    st.Page("views/start.py", title="Start", icon=":material/flag:", default=True),
    st.Page("views/explore.py", title="Explore", icon=":material/biotech:"),
    st.Page("views/absorption.py", title="Absorption", icon=":material/water_drop:"),
    st.Page("views/weights.py", title="Weights", icon=":material/balance:"),
    st.Page("views/runs.py", title="Runs", icon=":material/monitoring:"),
    st.Page("views/rollouts.py", title="Rollouts", icon=":material/list_alt:"),
    st.Page("views/compare.py", title="Compare", icon=":material/table_chart:"),
    st.Page("views/train.py", title="Train", icon=":material/play_circle:"),
]
page = st.navigation(pages)
with st.sidebar:
    st.radio("Theme", ["auto", "light", "dark"], key="theme", horizontal=True,
             help="auto follows the browser; figures follow the page.")
    st.toggle("Presentation mode", key="presentation",
              help="Large fonts everywhere (figures, token views, tables) and a narrower sidebar, for a projector.")
common.to_url("theme", "presentation", defaults={"theme": "auto", "presentation": False})
common.page_style()
page.run()
st.sidebar.caption("SGPO: a weak model learns *how to reason* by distilling the shift a strategy card induces "
                   "in its own next-token distribution.")
