# Two commands do all set-up on a fresh machine (see README):
#   make render   installs (first time only) and runs  simgen render scenes/paris.yaml
#   make test     installs (first time only) and runs the test suite
SCENE ?= scenes/paris.yaml
ARGS ?=
BIN := .venv/bin

.PHONY: render test lint
$(BIN)/.installed: pyproject.toml tools/install.sh
	bash tools/install.sh
	touch $@

render: $(BIN)/.installed
	$(BIN)/simgen render $(SCENE) $(ARGS)

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q $(ARGS)

lint: $(BIN)/.installed
	$(BIN)/ruff check .
