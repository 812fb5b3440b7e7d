# MediVision: `make demo` trains on the embedded MRI demo set, `make test` runs the tests.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help install demo test lint clean-outputs

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,demo,sweep]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install the project with its dev, demo and sweep extras

demo: $(STAMP)  ## train pretrain + GAN on the embedded MNI152 slices (CPU, ~5 min), print PSNR/SSIM vs bicubic
	$(PY) -m medivision.train +experiment=demo

test: $(STAMP)  ## run the test suite (CPU, tiny models)
	$(PY) -m pytest -q

lint: $(STAMP)  ## ruff over the package and tests; the import layers of pyproject.toml (import-linter)
	$(PY) -m ruff check medivision tests
	$(VENV)/bin/lint-imports

clean-outputs:  ## delete run outputs (outputs/) and caches (.cache/)
	rm -rf outputs .cache
