# Two commands do all set-up on a fresh machine:
#   make run    builds or reuses the cached venv, then runs the pipeline (python local_runner.py)
#   make test   builds or reuses the cached venv, then runs the test suite
# Pass flags with ARGS, for example: make run ARGS="--model lstm"
PYTHON ?= python3
VENV := $(shell $(PYTHON) scripts/setup_env.py --print-path)
PY := $(VENV)/bin/python
# TFX 1.21's Transform and TFMA are Keras 2 only.
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONPATH := $(CURDIR)

.PHONY: venv run tag bench-tagging test browser serve app mlflow-ui bench-app test-fast bench bench-ingest bench-features bench-training bench-serving accuracy bench-memory bench-export robustness bench-first-run bench-scale compile-kubeflow clean

venv:
	@$(PYTHON) scripts/setup_env.py

run: venv
	$(PY) local_runner.py $(ARGS)

# Two pytest-xdist workers, one test module each at a time (a module's fixtures stay in one worker); much of a
# pipeline test is single-threaded Beam, TFX and MLflow work, so two of them share the 2 cores well.
# TEST_WORKERS=0 runs in this process.
TEST_WORKERS ?= 2
test: venv browser
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(ARGS)

# Debian's chromium + chromium-driver for the page's browser test (skips quietly where it cannot).
browser:
	@bash scripts/install_browser.sh

# The latest pushed model on 127.0.0.1:8500: TF Serving (docker) or the test double, saying which.
serve: venv
	$(PY) scripts/serve.py $(ARGS)

# The web page on 127.0.0.1:8501 (ARGS="--host HOST:PORT --model NAME --mlflow-uri URI --port N").
app: venv
	$(PY) -m app $(ARGS)

# The run's own MLflow store (default: SQLite under the pipeline root) on 127.0.0.1:5000.
mlflow-ui: venv
	$(PY) scripts/mlflow_ui.py $(ARGS)

bench: bench-ingest bench-features bench-training bench-serving

bench-ingest: venv
	$(PY) -m bench.ingestion $(ARGS)

bench-features: venv
	$(PY) -m bench.features $(ARGS)

bench-training: venv
	$(PY) -m bench.training $(ARGS)

bench-serving: venv
	$(PY) -m bench.serving $(ARGS)

# The newcomer's first `make run` in a clean clone, and its re-run (about 3 minutes; ARGS="--fresh-venv": the venv too).
bench-first-run: venv
	$(PY) -m bench.first_run $(ARGS)

# Peak memory and time per step on synthetic music libraries of 1x, 10x and 30x the default set, and on
# full-length tracks (about 15 min on 2 cores; run it on an idle machine): ARGS="--scales 1,10,30 --epochs 2".
bench-scale: venv
	$(PY) -m bench.scale $(ARGS)

# Tag a folder of audio with the pushed model: make tag ARGS="/data/music --out tags/ [--dask HOST:PORT]"
# (a dry run that plans the files' tags; ARGS="... --write-tags" writes them, ARGS="--undo tags/write_undo.jsonl"
# puts the files back; run again into the same --out, it tags only new and changed files; docs/tagging.md)
tag: venv
	$(PY) -m tagging $(ARGS)

# Tagging throughput (bench/tagging.py); ARGS="--incremental --files 2000": re-runs on a library that changes.
bench-tagging: venv
	$(PY) -m bench.tagging $(ARGS)

bench-app: venv browser
	$(PY) -m bench.app_latency $(ARGS)

# Held-out accuracy: trains every model family on the real clips (hours on 2 cores) through the pipeline.
accuracy: venv
	$(PY) -m evaluation.accuracy $(ARGS)

# Peak memory of the client, the page's decode path and the test double on 2-hour files and an oversized shape.
bench-memory: venv
	$(PY) -m bench.memory_bounds $(ARGS)

# Save and load times of each family's SavedModel, with and without Keras' traced call functions.
bench-export: venv
	$(PY) -m bench.export $(ARGS)

# Answers to held-out real clips sent as they are and quieter, louder, as MP3 or Ogg, resampled, through a device:
# ARGS="--model-dir DIR --family NAME [--clips-from OUTPUT_DIR] [--limit N]".
robustness: venv
	$(PY) -m evaluation.robustness $(ARGS)

compile-kubeflow: venv
	$(PY) -m kubeflow.runner $(ARGS)

clean:
	rm -rf outputs .pytest_cache
