"""What the CLI does before and around its requests: settings and their precedence, one-line errors with exit
code 2, 503s retried after Retry-After, and shell completion. Each runs the program as a process."""

from __future__ import annotations

import time
from pathlib import Path

from services.api.app import create_app
from services.api.settings import ApiSettings
from shared.http import RETRY_AFTER_SECONDS
from tests.conftest import free_port
from tests.http_server import serve
from tests.ops.cli import salesdp


def closed_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


def test_no_api_key_is_a_one_line_error() -> None:
    result = salesdp("batches")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "salesdp: error: no API key: set SALESDP_API_KEY, api_key in the config file, or pass --api-key"
    )
    assert result.stdout == ""


def test_flags_beat_the_environment_which_beats_the_config_file(tmp_path: Path) -> None:
    from_file, from_env, from_flag = closed_url(), closed_url(), closed_url()
    config = tmp_path / "config.toml"
    config.write_text(f'url = "{from_file}"\napi_key = "from-the-file"\n')

    # The key and the URL from the file: it gets as far as connecting, to the file's URL.
    result = salesdp("batches", config=config)
    assert result.returncode == 2
    assert result.stderr.startswith(f"salesdp: error: cannot reach the api service at {from_file}: ConnectError")
    assert len(result.stderr.strip().splitlines()) == 1

    result = salesdp("batches", config=config, env={"SALESDP_URL": from_env})
    assert f"cannot reach the api service at {from_env}:" in result.stderr

    result = salesdp("--url", from_flag, "batches", config=config, env={"SALESDP_URL": from_env})
    assert f"cannot reach the api service at {from_flag}:" in result.stderr
    assert result.returncode == 2


def test_ingest_url_is_its_own_setting(tmp_path: Path) -> None:
    ingest = closed_url()
    (tmp_path / "sales.csv").write_text("transaction_id\n")
    result = salesdp("--ingest-url", ingest, "ingest", str(tmp_path / "sales.csv"), env={"SALESDP_API_KEY": "k"})
    assert result.returncode == 2
    assert f"cannot reach the ingest service at {ingest}:" in result.stderr


def test_an_unreadable_config_file_is_an_error(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('url = "unterminated\n')
    result = salesdp("batches", config=config)
    assert result.returncode == 2
    assert result.stderr.startswith(f"salesdp: error: cannot read the config file {config}:")


def test_a_dataset_the_file_name_does_not_tell_is_an_error(tmp_path: Path) -> None:
    for name in ("export.csv", "sales_and_products.csv"):
        (tmp_path / name).write_text("a\n")
        result = salesdp(
            "ingest", str(tmp_path / name), env={"SALESDP_API_KEY": "k", "SALESDP_INGEST_URL": closed_url()}
        )
        assert result.returncode == 2, result.stderr
        assert f"cannot tell the dataset from the file name '{name}'; pass --dataset" in result.stderr


def test_usage_errors_exit_2() -> None:
    assert salesdp("status", "not-a-uuid", env={"SALESDP_API_KEY": "k"}).returncode == 2
    assert salesdp("kpis", "--from", "2025-13-01", env={"SALESDP_API_KEY": "k"}).returncode == 2
    assert salesdp("kpis", "--by", "weekday", env={"SALESDP_API_KEY": "k"}).returncode == 2
    assert salesdp("batches", "--since", "yesterday", env={"SALESDP_API_KEY": "k"}).returncode == 2


def test_a_503_is_retried_after_its_retry_after_then_reported() -> None:
    # The real api with its database unreachable: every request is a 503 with Retry-After.
    down = ApiSettings(database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/sdp")
    with serve(create_app(down)) as url:
        started = time.monotonic()
        result = salesdp("batches", env={"SALESDP_API_KEY": "k", "SALESDP_URL": url, "SALESDP_RETRIES": "1"})
        elapsed = time.monotonic() - started
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("salesdp: 503 database_unavailable: ")
    assert lines[0].endswith(f"; retrying in {RETRY_AFTER_SECONDS}s (1/1)")
    assert lines[1].startswith("salesdp: error: 503 database_unavailable: ")
    assert elapsed >= RETRY_AFTER_SECONDS


def test_shell_completion() -> None:
    script = salesdp("--show-completion", "bash")
    assert script.returncode == 0
    assert "_SALESDP_COMPLETE=complete_bash" in script.stdout and "complete" in script.stdout

    def complete(words: str) -> list[str]:
        result = salesdp(
            env={
                "_SALESDP_COMPLETE": "complete_bash",
                "COMP_WORDS": words,
                "COMP_CWORD": str(len(words.split(" ")) - 1),
            }
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.split()

    assert complete("salesdp bat") == ["batches"]
    assert set(complete("salesdp ")) == {
        "ingest",
        "batches",
        "status",
        "rejects",
        "kpis",
        "release",
        "replay",
        "backfill",
        "keys",
    }
    assert complete("salesdp keys r") == ["revoke", "rotate"]
    assert complete("salesdp kpis --by ") == ["day", "category", "payment-method", "state", "top-products"]
