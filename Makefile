# The two commands: `make run` (the whole pipeline on an embedded default) and `make test`.
# Both do all set-up first (scripts/bootstrap.sh, idempotent, needs root on Debian).
VENV := .venv
ARGS ?=

.PHONY: run test lint bench noise setup clean

setup:
	@bash scripts/bootstrap.sh run

run:
	@bash scripts/bootstrap.sh run
	$(VENV)/bin/memtrail up $(ARGS)

test:
	@bash scripts/bootstrap.sh test
	$(VENV)/bin/python -m pytest $(ARGS)

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy memtrail sensors streams sinks schemas ebpf patterns

bench:
	@bash scripts/bootstrap.sh run
	$(VENV)/bin/python -m bench $(ARGS)

# the benign corpus under the real pipeline (debootstrap images, cached): make noise ARGS="--only nginx"
noise:
	@bash scripts/bootstrap.sh test
	$(VENV)/bin/python -m bench noise $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
