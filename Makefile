# tonegraph: `make demo` and `make test` do all set-up on a fresh Debian/Ubuntu machine.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
CORE   := $(VENV)/.installed-core
# torch 2.13.0 resolves to a CPU build on machines without a GPU; pinning it first
# keeps pip from choosing a newer CUDA build for the project's own range.
TORCH  ?= torch==2.13.0
# Debian packages the project uses at run or test time.
APT_PACKAGES := graphviz jackd2 libportaudio2 libsndfile1 liblo-tools ola qlcplus puredata-core systemd iproute2 \
  libegl1 libegl-mesa0 libgl1 libglx-mesa0 libgl1-mesa-dri xvfb libx11-6 libxext6 libxrandr2 libxinerama1 libxxf86vm1 libxi6 libxrender1 \
  fluidsynth timgm6mb-soundfont fluid-soundfont-gm

.PHONY: demo test bench bench-gpu eval charts looks soak system-deps setup setup-core setup-all venv docs models clean

# The demo needs the core alone (no torch, GL, Debian peers): a light first run.
# `make setup-all` (or `make test`) installs the rest.
demo: setup-core
	$(VENV)/bin/tonegraph run graphs/demo.yaml --headless --duration 20
	@test -f $(STAMP) || echo "the core is installed; make setup-all installs the rest (windows and video, torch, the rig's peers, the tests)"

# Two workers (pytest-xdist), each test file on one of them: peers a file starts (OLA,
# JACK, QLC+, MIDI ports) stay within it, and waiting on peers overlaps with work.
TEST_JOBS ?= 2
test: setup
	$(PY) -m pytest -n $(TEST_JOBS) --dist loadfile

bench: setup
	$(PY) -m tests.benchmarks

# On a machine with an NVIDIA GPU: torch nodes on CUDA, batching, GL through the NVIDIA
# EGL driver and NVENC (tests/benchmarks/gpu.py says what each figure is).
bench-gpu: setup
	$(PY) -m tests.benchmarks.gpu

# CHAOS=1: one live show under every fault and attack in turn for DURATION seconds
# (default 3600), ending with a table (tests/chaos.py; needs root for its namespaces).
DURATION ?= 3600
soak: setup
ifeq ($(CHAOS),1)
	$(PY) -m tests.chaos --duration $(DURATION)
else
	TONEGRAPH_SOAK_HOURS=24 TONEGRAPH_SOAK_REALTIME=600 TONEGRAPH_RELOADS=1000 \
	  $(PY) -m pytest -q tests/test_soak.py tests/engine/test_reload.py::test_many_reloads_with_corruptions_while_sending_osc
endif

# make eval also scores Frets on Fire songs once `make charts` has fetched them (Muldjord's
# guitar stems in the dev set, the rest held out beyond it: tests/eval/charts.py): two
# Debian packages (about 60 MB, apt-get download: no root, nothing installed) unpacked
# into CHARTS, outside the project.
CHARTS ?= $(HOME)/.cache/tonegraph/fretsonfire
CHART_PACKAGES := fretsonfire-songs-muldjord fretsonfire-songs-sectoid
eval: setup
	CHARTS=$(CHARTS) $(PY) -m tests.eval

charts:
	mkdir -p $(CHARTS)
	cd $(CHARTS) && for p in $(CHART_PACKAGES); do \
	  ls $${p}_*.deb >/dev/null 2>&1 || apt-get download $$p || exit 1; \
	  dpkg -x $${p}_*.deb . || exit 1; done
	@echo "the held-out songs are in $(CHARTS); make eval scores them"

# Every patch with a window over real recordings: how well its pictures follow the music
# (numbers, and contact sheets in docs/looks/).
looks: setup
	$(PY) -m tests.looks

# The node reference and patch schema from the node declarations, then the manual in
# docs/ as a website in build/site (open build/site/index.html).
docs: setup
	$(VENV)/bin/tonegraph docs --builtin -o docs/nodes.md
	$(VENV)/bin/tonegraph schema --builtin -o docs/patch.schema.json
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict -q

# The shipped weights of ml.autoencoder and ml.gan, made from data the project makes
# itself: synthetic sounds of many kinds, and drawn squiggles.
# The shipped onset detector and beat activation are trained through the full General
# MIDI soundfont (fluid-soundfont-gm, 148 MB, which setup installs for the manual's
# training commands).
models: setup
	$(VENV)/bin/tonegraph sounds -o build/sounds --count 160 --seed 0 --mkdir
	$(VENV)/bin/tonegraph train autoencoder --audio build/sounds -o nodes/ml/models/autoencoder.pt --into-project \
	  --seed 0 --checkpoint build/autoencoder.ckpt --plot docs/models/autoencoder-loss.png
	$(PY) -m tests.looks.codes
	$(VENV)/bin/tonegraph draw -o build/squiggles --count 2000 --seed 0 --mkdir
	$(VENV)/bin/tonegraph train gan --images build/squiggles -o nodes/ml/models/gan.pt --into-project \
	  --seed 0 --steps 3000 --ema 0 --arch palette --temperature 0.25 --keep best \
	  --checkpoint build/gan.ckpt --plot docs/models/gan-loss.png \
	  --samples docs/models/gan-samples.png
	$(VENV)/bin/tonegraph train onsets -o nodes/ml/models/onsets.npz --into-project --seed 0 \
	  --soundfont /usr/share/sounds/sf2/FluidR3_GM.sf2 --checkpoint build/onsets.ckpt \
	  --plot docs/models/onsets-loss.png
	$(VENV)/bin/tonegraph train beats -o nodes/ml/models/beats.npz --into-project --seed 0 \
	  --soundfont /usr/share/sounds/sf2/FluidR3_GM.sf2 --checkpoint build/beats.ckpt \
	  --plot docs/models/beats-loss.png

setup: system-deps $(STAMP)
setup-all: setup
setup-core: $(CORE)

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing system packages:$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing) >/dev/null \
	      || { echo "error: apt-get could not install:$$missing" >&2; exit 1; }; \
	  else \
	    echo "error: missing system packages:$$missing — install them with: sudo apt-get install$$missing" >&2; exit 1; \
	  fi; \
	fi

$(STAMP): pyproject.toml
	@$(MAKE) --no-print-directory venv
	$(PIP) install -q "$(TORCH)"
	$(PIP) install -q -e ".[all,dev,docs]"
	touch $(STAMP) $(CORE)

$(CORE): pyproject.toml
	@$(MAKE) --no-print-directory venv
	$(PIP) install -q -e .
	touch $(CORE)

venv:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 is needed"' \
	  || { echo "error: $(PYTHON) is older than 3.11; run: make PYTHON=python3.11 ..." >&2; exit 1; }
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || $(MAKE) --no-print-directory system-deps APT_PACKAGES=
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

clean:
	rm -rf $(VENV) build *.egg-info
