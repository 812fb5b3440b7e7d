# MediVision: `make demo` trains on the embedded MRI demo set, `make test` runs the tests.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The exact versions the tests passed with; `make lock` re-resolves them from pyproject.toml.
CONSTRAINTS := constraints.txt
PIP := --quiet --disable-pip-version-check

.PHONY: help install lock demo bundle bundle-thick test lint gpu-check clean-outputs

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml $(CONSTRAINTS)
	python3 -m venv $(VENV)
	$(PY) -m pip install $(PIP) -c $(CONSTRAINTS) -e '.[train,dev,demo,sweep]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install the project with its train, dev, demo and sweep extras, as constraints.txt pins

lock:  ## re-resolve the newest versions pyproject.toml allows into constraints.txt (then: make test, commit both)
	rm -rf .lock-venv
	python3 -m venv .lock-venv
	.lock-venv/bin/python -m pip install $(PIP) -e '.[train,dev,demo,sweep]'
	{ echo "# Written by 'make lock' on $$(date -u +%Y-%m-%d): what make install and .ci/run install."; \
	  .lock-venv/bin/python -m pip freeze --exclude-editable; } > .lock-venv/constraints.txt
	mv .lock-venv/constraints.txt $(CONSTRAINTS)
	rm -rf .lock-venv

demo: $(STAMP)  ## on embedded data: SRGAN on the MNI152 slices, then the general recipe on synthetic contrasts (CPU, 9 min)
	$(PY) -m medivision.train +experiment=demo
	$(PY) -m medivision.train +experiment=general_demo

# The bundled general model: trained from this checkout, then written into the package with its provenance.
BUNDLE_RUN := outputs/runs/general-$(shell date -u +%Y%m%d-%H%M%S)

# It is written only if it passes the shipping gate on the real-scan benchmark (evaluate require_gate=true).
bundle: $(STAMP)  ## train the bundled general model (+experiment=general), gate it on data=real_scans, write medivision/weights/ (safetensors + ONNX)
	$(PY) -m medivision.train +experiment=general hydra.run.dir=$(BUNDLE_RUN)
	$(PY) -m medivision.evaluate data=real_scans require_gate=true ensemble=8 hydra.run.dir=$(BUNDLE_RUN)/real_scans \
	  ckpt=$$(ls -t $(BUNDLE_RUN)/checkpoints/best-*.ckpt | head -1)
	$(PY) -m medivision.export format=safetensors overwrite=true output=medivision/weights/general.safetensors \
	  ckpt=$$(ls -t $(BUNDLE_RUN)/checkpoints/best-*.ckpt | head -1)
	$(PY) -m medivision.export format=onnx overwrite=true output=medivision/weights/general.onnx \
	  ckpt=medivision/weights/general.safetensors

# The bundled through-plane prior, likewise: written only if it beats cubic B-spline on the thick-slice benchmark.
THICK_RUN := outputs/runs/general_thick-$(shell date -u +%Y%m%d-%H%M%S)

bundle-thick: $(STAMP)  ## train the through-plane prior (+experiment=general_thick), gate it on the thick-slice benchmark, write medivision/weights/general_thick.*
	$(PY) -m medivision.train +experiment=general_thick hydra.run.dir=$(THICK_RUN)
	$(PY) -m medivision.thick_benchmark require_gate=true hydra.run.dir=$(THICK_RUN)/thick_benchmark \
	  ckpt=$$(ls -t $(THICK_RUN)/checkpoints/best-*.ckpt | head -1)
	$(PY) -m medivision.export format=safetensors overwrite=true output=medivision/weights/general_thick.safetensors \
	  ckpt=$$(ls -t $(THICK_RUN)/checkpoints/best-*.ckpt | head -1)
	$(PY) -m medivision.export format=onnx overwrite=true output=medivision/weights/general_thick.onnx \
	  ckpt=medivision/weights/general_thick.safetensors

test: $(STAMP)  ## run the test suite (CPU, tiny models)
	$(PY) -m pytest -q

lint: $(STAMP)  ## ruff over the package and tests; the import layers of pyproject.toml (import-linter)
	$(PY) -m ruff check medivision tests
	$(VENV)/bin/lint-imports

# How to run it on a GPU machine without the project installed: experiments/benchmarks/README.md, "GPU".
gpu-check:  ## one GPU, 8 min at most: GPU tests, train and resume, benchmark, bf16/NaN checks (ARGS=--tiny: CPU trial)
	bash benchmarks/gpu_check.sh $(ARGS)

clean-outputs:  ## delete run outputs (outputs/) and caches (.cache/)
	rm -rf outputs .cache
