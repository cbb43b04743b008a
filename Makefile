# SeqWM: two commands on a fresh machine — `make demo` and `make test`.
SHELL := /bin/bash
ENV := source scripts/env.sh

.PHONY: setup test demo bench clean

setup:            ## idempotent: Debian packages, .venv/, colcon build into install/
	@bash scripts/setup.sh

test: setup       ## set up, then run every package's tests
	@$(ENV) && python -m pytest -q $(PYTEST_ARGS)

demo: setup       ## set up, then run a multi-robot PushBox episode over real ROS 2
	@$(ENV) && python -m seqwm_bringup.demo $(DEMO_ARGS)

bench: setup      ## run every benchmark in bench/ (one JSON object each)
	@$(ENV) && for b in bench/[!_]*.py; do echo "# $$b" >&2; python "$$b" || exit 1; done

clean:            ## remove build outputs (keeps .venv/)
	rm -rf build install log
