# Two commands do all set-up on a fresh machine (see README):
#   make render   installs (first time only) and runs  simgen render scenes/paris.yaml
#   make test     installs (first time only) and runs the test suite
SCENE ?= scenes/paris.yaml
ARGS ?=
BIN := .venv/bin

.PHONY: render test lint reproduce
$(BIN)/.installed: pyproject.toml tools/install.sh
	bash tools/install.sh
	touch $@

render: $(BIN)/.installed
	$(BIN)/simgen render $(SCENE) $(ARGS)

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q $(ARGS)

lint: $(BIN)/.installed
	$(BIN)/ruff check .

# every paper's protocol at the CPU budget (renders cached in out/cache, finished fits reused),
# then docs/results.md: the papers' numbers beside ours (see docs/results.md for its wall time)
reproduce: $(BIN)/.installed
	$(BIN)/loc suite all --budget cpu --results docs/results.md $(ARGS)
