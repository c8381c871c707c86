# Every target works on a fresh machine of this project's kind; see README.md.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
export SPARK_LOCAL_IP ?= 127.0.0.1

.PHONY: install run up down status daily test lint format migrate bench soak clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[dev]'
	touch $@

# The scheduler's own virtualenv: Airflow pins its own FastAPI (scheduler/requirements.txt).
AIRFLOW_VENV ?= .venv-airflow
$(AIRFLOW_VENV)/.installed: scheduler/requirements.txt
	test -x $(AIRFLOW_VENV)/bin/python || $(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/python -m pip install --upgrade pip
	$(AIRFLOW_VENV)/bin/python -m pip install -r scheduler/requirements.txt
	touch $@

install: $(VENV)/.installed $(AIRFLOW_VENV)/.installed

run: install  ## start everything, load the sample data, show KPIs; Ctrl-C stops it all
	$(PY) -u -m devtools.devstack run

up: install  ## start everything in the background; returns when every service is healthy
	$(PY) -u -m devtools.devstack up

down:  ## stop what `make up` started
	$(PY) -m devtools.devstack down

daily: install  ## run the daily DAG (scheduler/dags/sales_daily.py) once, with Airflow, against what `make up` started
	mkdir -p .run/airflow
	AIRFLOW_HOME=$(CURDIR)/.run/airflow AIRFLOW__CORE__LOAD_EXAMPLES=False \
	  AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/scheduler/dags $(AIRFLOW_VENV)/bin/airflow db migrate >/dev/null
	AIRFLOW_HOME=$(CURDIR)/.run/airflow AIRFLOW__CORE__LOAD_EXAMPLES=False \
	  AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/scheduler/dags SCHEDULER_API_KEY=$$(cat .run/api-key) \
	  $(AIRFLOW_VENV)/bin/airflow dags test sales_daily

status:
	$(PY) -m devtools.devstack status

migrate: install
	$(PY) -m ops.admin migrate

lint: install
	$(VENV)/bin/ruff check shared services ops devtools tests bench scheduler
	$(VENV)/bin/ruff format --check shared services ops devtools tests bench scheduler
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff check --fix shared services ops devtools tests bench scheduler
	$(VENV)/bin/ruff format shared services ops devtools tests bench scheduler

test: lint  ## the whole suite: lint, types, unit, contract and end-to-end tests
	$(PY) -m pytest

bench: install  ## benchmarks; each prints its figures against a baseline measured in the same run
	$(PY) -m bench.ingest_upload --size-mb $(or $(BENCH_INGEST_MB),1024)
	$(PY) -m bench.transform_stage --rows $(or $(BENCH_TRANSFORM_ROWS),1000000)
	$(PY) -m bench.warehouse_load
	$(PY) -m bench.quality_checks --rows $(or $(BENCH_QUALITY_ROWS),1000000)
	$(PY) -m bench.kpi_api --duration $(or $(BENCH_KPI_SECONDS),10)

soak: install  ## 200 batches from 8 clients through the whole platform: throughput, latency, memory (docs/benchmarks.md)
	$(PY) -m bench.soak --batches $(or $(SOAK_BATCHES),200) --clients $(or $(SOAK_CLIENTS),8) $(if $(SOAK_SEED),--seed $(SOAK_SEED))

clean: down
	rm -rf .data .run
