"""The sgpo-lab workbench: a thin router. Run with ``streamlit run app/main.py`` (or ``make app``).

The sidebar holds what every page shares: the runs root (default: the shipped ``demo_runs/``, or
``$SGPO_LAB_RUNS``; kept in the URL as ``?root=`` so a reload keeps it), the theme (figures follow it) and
presentation mode. The app opens on the Start page (SGPO's story in five steps). Each page is a short script under
``views/`` (not ``pages/``: Streamlit would also serve those as pages of their own, without this router, to a
first visitor of a page address) that calls ``sgpo_lab``; ``common.py`` holds the cached loaders.
"""

import json
import re
import sys
from pathlib import Path

import streamlit as st

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # `streamlit run` adds it; AppTest does not
    sys.path.insert(0, str(HERE))


def preload_charts() -> None:
    """Have the browser load plotly.js (Streamlit's largest frontend module, about 5 MB) now, with the first message.

    Otherwise it is fetched and parsed only once a page's first figure arrives, after the server has read the runs,
    so each waits for the other (about a second each on a busy 2-core machine); this way they overlap. The script
    goes to Streamlit's event container (where ``st.toast`` and style-only ``st.html`` go), which takes no space.
    Skipped where this Streamlit version names that module or that container differently.
    """
    folder = Path(st.__file__).parent / "static" / "static" / "js"
    chunk = next((p for p in folder.glob("PlotlyChart.*.js") if re.fullmatch(r"PlotlyChart\.[\w-]+\.js", p.name)), None)
    events = getattr(st, "_event", None)
    if chunk is None or events is None:
        return
    try:  # the modules it imports (named at its top), fetched at the same time rather than after it
        with chunk.open("rb") as file:
            head = file.read(5000).decode(errors="replace")
    except OSError:
        head = ""
    names = [chunk.name, *dict.fromkeys(re.findall(r'(?:from|import)\s*"\./([\w.-]+\.js)"', head))]
    events.html(f"""<script>
const index = document.querySelector('script[type="module"][src*="/static/js/index."]');
if (index) for (const name of {json.dumps(names)}) import(new URL(name, index.src).href).catch(() => {{}});
</script>""", unsafe_allow_javascript=True)


# Emoji icons, not ":material/...:" ones: a material icon as favicon is fetched from fonts.gstatic.com (not offline).
st.set_page_config(page_title="sgpo-lab", page_icon="🧪", layout="wide")
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
if page.title not in ("Start", "Rollouts"):  # a page with figures: plotly.js loads while the server reads the runs
    preload_charts()  # before importing the app's modules (pandas and the rest take a while on a first visit)

import common  # noqa: E402

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
