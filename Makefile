# Two commands do all the set-up on a fresh machine:
#   make demo   evaluates the bundled reference models (quick suite), stores the runs with the published
#               results (leaderboard/results), builds the leaderboard
#   make test   runs the test suite
# Each creates the virtual environment in .venv when needed (pinned by constraints.txt).

VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint install reference-models benchmarks clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/invarbench eval mnist5k/lenet-standard --suite quick
	$(BIN)/invarbench eval mnist5k/lenet-pgd-at --suite quick
	$(BIN)/invarbench results list
	$(BIN)/invarbench results import leaderboard/results
	$(BIN)/invarbench site build --out leaderboard/_site

# Lint and format check (ruff), then the tests. pytest exits 5 when it collects no test: not a failure of the code.
test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS); status=$$?; [ $$status -eq 5 ] && exit 0; exit $$status

lint: $(STAMP)
	$(BIN)/ruff check invarbench tests benchmarks tools
	$(BIN)/ruff format --check invarbench tests benchmarks tools

# Retrain the bundled reference models (a few minutes on a CPU); update the cards' sha256 after.
reference-models: $(STAMP)
	$(BIN)/python -m invarbench.reference.train --out model_cards/mnist5k

clean:
	rm -rf $(VENV) leaderboard/_site .pytest_cache
