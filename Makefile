# Developer commands. `make run` and `make test` set everything up on first use
# (virtualenv in .venv, dependencies, generated protobuf code) and are quick to rerun.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEPS   := $(VENV)/.deps-installed
PROTOS := $(wildcard proto/healthcode/v1/*.proto)
GEN    := healthcode/v1/.generated

.PHONY: run run-netns test lint proto bench soak mutation clean vendor

run: $(DEPS) $(GEN)  ## the main job: a local federation on the embedded registry
	$(BIN)/hcx sim $(SIM_ARGS)

run-netns: $(DEPS) $(GEN)  ## the same on a test bed (as root): a host per process, etcd on 3 members
	$(BIN)/hcx sim --netns $(SIM_ARGS)

test: $(DEPS) $(GEN)  ## unit + integration tests (real gRPC servers on 127.0.0.1)
	$(BIN)/pytest $(PYTEST_ARGS)

vendor:  ## refresh web/static/vendor from the npm registry (web/package-lock.json)
	cd web && npm ci --ignore-scripts --no-audit --no-fund
	cp web/node_modules/jsqr/dist/jsQR.js web/static/vendor/jsQR.js
	cp web/node_modules/jsqr/LICENSE web/static/vendor/jsQR.LICENSE

lint: $(DEPS) $(GEN)  ## ruff, ruff format, mypy (--strict on trust/; the tests too)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict trust
	$(BIN)/mypy trust nodes gateway simulations hcx web bench
	$(BIN)/mypy tests

proto: $(GEN)

bench: $(DEPS) $(GEN)
	$(BIN)/python -m bench $(BENCH)

soak: $(DEPS) $(GEN)  ## not in CI: gateway at 80 % of capacity, 10 min (SOAK_ARGS=--duration=60)
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

# Mutation testing of the security core (docs/testing.md): mutmut in a copy of the tree under
# var/mutation/work, then var/mutation/score.json. The modules are [tool.mutmut] only_mutate in
# pyproject.toml; MUTATION_MODULES="trust/base45.py" runs one alone.
MUTATION_MODULES ?=
MUTATION_JOBS    ?= 2
MUTATION_NICE    ?= nice -n 10
MUTATION_WORK    ?= var/mutation/work
MUTATION_OUT     ?= var/mutation/score.json
mutation: $(DEPS) $(GEN)  ## mutation score of the security core (long: not in CI)
	$(BIN)/python tools/mutation_score.py prepare --work $(MUTATION_WORK) --modules "$(MUTATION_MODULES)"
	# A private TMPDIR (pytest's base directories apart from any other test run on the machine)
	# and derandomised Hypothesis examples: a mutant's verdict is the same on every run.
	mkdir -p $(MUTATION_WORK)/tmp
	cd $(MUTATION_WORK) && TMPDIR=$(abspath $(MUTATION_WORK))/tmp HYPOTHESIS_PROFILE=mutation \
		$(MUTATION_NICE) \
		$(abspath $(BIN))/mutmut run --max-children $(MUTATION_JOBS)
	$(BIN)/python tools/mutation_score.py score --work $(MUTATION_WORK) --out $(MUTATION_OUT) $(if $(MUTATION_FAIL_UNDER),--fail-under $(MUTATION_FAIL_UNDER))

$(DEPS): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

# Generated code is not committed: it is produced here from proto/ and git-ignored.
$(GEN): $(PROTOS) $(DEPS)
	rm -f healthcode/v1/*_pb2*.py*
	$(BIN)/python -m grpc_tools.protoc -Iproto \
		--python_out=. --pyi_out=. --grpc_python_out=. $(PROTOS)
	touch $@

clean:
	rm -rf $(VENV) var healthcode/v1/*_pb2*.py* $(GEN) .pytest_cache .mypy_cache .ruff_cache
