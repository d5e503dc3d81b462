# Two commands do all the set-up: `make app` serves the app, `make test` runs every test; `make lab` opens the
# notebooks in JupyterLab. Each creates or updates the project-local .venv first; a second run skips the install
# (the stamp depends only on the files that list what to install, which running a notebook never writes).
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8866
LAB_ARGS ?=
STAMP  := $(VENV)/.installed

.PHONY: app test lab venv export

venv: $(STAMP)

$(STAMP): requirements.txt constraints.txt pyproject.toml setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip==26.3
	$(BIN)/python -m pip install -q -r requirements.txt -c constraints.txt
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

app: $(STAMP)
	@echo "bear_app: open http://127.0.0.1:$(PORT)/ (Ctrl-C stops it)"
	JUPYTER_PATH=$(CURDIR)/share/jupyter $(BIN)/bear-app nbs/app.ipynb --port=$(PORT) --no-browser --Voila.ip=127.0.0.1

lab: $(STAMP)
	JUPYTER_PATH=$(CURDIR)/share/jupyter $(BIN)/jupyter lab --ServerApp.root_dir=nbs --ServerApp.ip=127.0.0.1 $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

test: $(STAMP)
	$(BIN)/pytest -q

export: $(STAMP)
	$(BIN)/nbdev-export
