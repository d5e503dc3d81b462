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

# nbdev's Jupyter save hook (what nbdev-install-hooks puts in ~/.jupyter, here for this server only): every save,
# autosave included, writes the notebook as nbdev-clean would, so running the chapter leaves `git status` clean but
# for the outputs you changed. ([tool.nbdev] jupyter_hooks = true in pyproject.toml turns the hook on; the server runs
# in nbs/, the folder it opens, because the hook takes the paths it is given as relative to the current directory.)
lab: $(STAMP)
	cd nbs && JUPYTER_PATH=$(CURDIR)/share/jupyter ../$(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 \
	  --ContentsManager.pre_save_hook=nbdev.clean.clean_jupyter $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

test: $(STAMP)
	$(BIN)/pytest -q

export: $(STAMP)
	$(BIN)/nbdev-export
