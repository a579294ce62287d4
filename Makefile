# s2sr: `make demo` and `make test` set everything up on a fresh machine (Python 3.10+ with venv).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip -q --disable-pip-version-check
IMAGE ?= localhost/s2sr:latest

.PHONY: install demo test lint bench bench-runtimes bench-product bench-product-4g bench-precision bench-ceiling build e2e clean

$(VENV)/.installed: requirements.txt requirements-dev.txt requirements-train.txt pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install -r requirements.txt -r requirements-dev.txt
	$(PIP) install --no-deps -r requirements-train.txt
	$(PIP) install --no-deps -e .
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/s2sr demo --output-dir out/demo

lint: install
	$(VENV)/bin/ruff check src blocks tests bench ci
	$(VENV)/bin/hadolint Dockerfile

test: lint
	$(PY) -m pytest -q tests

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
	rm -rf $(VENV) out .pytest_cache
