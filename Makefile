# Two commands for a fresh machine with Python 3.11 and pip (see README):
#   make app    set up .venv if needed, then open the workbench on the shipped models and demo runs
#   make test   set up .venv if needed, then run the whole test suite (notebooks and browser test included)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PORT   ?= 8501

.PHONY: setup app test bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,trl]"
	touch $(STAMP)

setup: $(STAMP)

app: $(STAMP)
	$(BIN)/streamlit run app/main.py --server.address 127.0.0.1 --server.port $(PORT) --browser.gatherUsageStats false

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/sgpo-lab bench step
	$(BIN)/sgpo-lab bench run
	OMP_NUM_THREADS=1 $(BIN)/python scripts/bench_buckets.py
	$(BIN)/python scripts/bench_app.py

clean:
	rm -rf $(VENV) .pytest_cache
