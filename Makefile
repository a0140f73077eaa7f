# The README's two commands: `make demo` (the main job) and `make test`.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip

.PHONY: install demo test
install:
	# CPU build of torch from local disk first, so no CUDA build is pulled.
	$(PIP) install "torch==2.13.0"
	$(PIP) install -e ".[test,app,pose]"
	$(PIP) install --no-deps "open_clip_torch>=2.20"
	$(PIP) install ftfy playwright  # open_clip's tokenizer needs ftfy; playwright drives the browser test
	(apt-get update -qq && apt-get install -y -qq chromium) || echo "chromium not installed: tests/test_annotate_browser.py will be skipped"

demo: install
	actionbench demo

test: install
	lint-imports  # the floors: no lower package imports a higher one, no import circles (pyproject.toml)
	ruff check .
	$(PYTHON) -m pytest -q
