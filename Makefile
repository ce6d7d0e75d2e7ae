# Every target sets itself up on a fresh machine: a virtual environment in .venv with everything installed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

.PHONY: install dev demo test docs bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# facenet-pytorch (MTCNN face weights) is installed without its dependencies: its pins are stale.
$(STAMP): pyproject.toml | $(PY)
	$(PIP) install -e '.[dev,postgres]'
	$(PIP) install --no-deps 'facenet-pytorch>=2.5'
	touch $(STAMP)

install dev: $(STAMP)

# scikit-learn-extra (optional PAM / alternate k-medoids engines, tested by `make test`): its 0.3.0 wheel
# does not import under NumPy 2, so it is built from source (needs a C compiler).
SKX := $(VENV)/.sklearn-extra
$(SKX): $(STAMP)
	$(PIP) install cython setuptools
	$(PIP) install --no-build-isolation --no-binary scikit-learn-extra 'scikit-learn-extra>=0.3' \
	  || echo "warning: scikit-learn-extra did not build (a C compiler is needed); its tests will be skipped"
	touch $(SKX)

# The demo: index the bundled sample photos with the offline default model, then query with one photo
# and with an edited copy (cropped, resized, brightened, recompressed) of another.
DEMO := demo-out
demo: $(STAMP)
	rm -rf $(DEMO) && mkdir -p $(DEMO)
	$(VENV)/bin/retr index build tests/data/photos --index $(DEMO)/index
	$(PY) -c "from PIL import Image, ImageEnhance; im = Image.open('tests/data/photos/chelsea.jpg'); \
	  w, h = im.size; im = im.crop((w // 10, h // 10, w, h)).resize((240, 180)); \
	  ImageEnhance.Brightness(im).enhance(1.3).save('$(DEMO)/chelsea-edited.jpg', quality=50)"
	$(VENV)/bin/retr query tests/data/photos/coffee.jpg $(DEMO)/chelsea-edited.jpg --index $(DEMO)/index -k 5 \
	  --html $(DEMO)/results.html
	@echo "contact sheet: $(DEMO)/results.html"

# Ray in the tests listens and connects on 127.0.0.1 only, and sends no usage statistics.
test: $(STAMP) $(SKX)
	RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 RAY_USAGE_STATS_ENABLED=0 $(PY) -m pytest -q

# The docs site (mkdocs-material; Zensical reads the same mkdocs.yml), into site/. The command-line reference
# is generated from the typer app first (tests/docs/test_cli_reference.py fails when the committed page is stale).
docs: $(STAMP)
	$(PY) -m tests.docs.cli_reference
	$(VENV)/bin/mkdocs build --strict

clean:
	rm -rf $(VENV) demo-out site
