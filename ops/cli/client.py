"""HTTP to the platform: the bearer key, 503s retried after their Retry-After, and every failure turned into
one ``CliError`` line (the API's ``{"error": {code, message}}`` when it sent one)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from ops.cli.settings import CliSettings

EXIT_ERROR = 2
# Used when a 503 carries no (readable) Retry-After.
DEFAULT_RETRY_AFTER = 2.0
MAX_RETRY_AFTER = 60.0


class CliError(Exception):
    """A failure the CLI reports as one line and exits on (2: usage, settings, transport or API errors)."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Unavailable(CliError):
    """A 503: the service is up but a dependency of it is not; try again after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def error_of(response: httpx.Response) -> str:
    """``<status> <code>: <message>`` from the platform's error envelope, or the status and raw text."""
    try:
        error = response.json()["error"]
        return f"{response.status_code} {error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        text = response.text.strip().replace("\n", " ")[:200]
        return f"{response.status_code} {response.reason_phrase}" + (f": {text}" if text else "")


def retry_after(response: httpx.Response) -> float:
    try:
        return min(max(float(response.headers["retry-after"]), 0.0), MAX_RETRY_AFTER)
    except (KeyError, ValueError):
        return DEFAULT_RETRY_AFTER


class Client:
    """One service's base URL, the key, and the retry policy; ``notify`` hears about each retry."""

    def __init__(self, settings: CliSettings, *, ingest: bool = False, notify: Callable[[str], None]) -> None:
        if settings.api_key is None or not settings.api_key.get_secret_value():
            raise CliError("no API key: set SALESDP_API_KEY, api_key in the config file, or pass --api-key")
        self.name = "ingest" if ingest else "api"
        self.base_url = (settings.ingest_url if ingest else settings.url).rstrip("/")
        self.retries = settings.retries
        self.notify = notify
        self.http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {settings.api_key.get_secret_value()}"},
            timeout=httpx.Timeout(settings.timeout),
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.http.close()

    def _unreachable(self, exc: httpx.TransportError) -> CliError:
        return CliError(f"cannot reach the {self.name} service at {self.base_url}: {type(exc).__name__}: {exc}")

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The answer to a request, retried on 503; a 4xx or 5xx answer raises ``CliError``.

        Keyword ``content_factory`` builds the body afresh for each attempt (a file streamed again)."""
        factory = kwargs.pop("content_factory", None)
        attempt = 0
        while True:
            if factory is not None:
                kwargs["content"] = factory()
            try:
                response = self.http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                raise self._unreachable(exc) from exc
            if response.status_code == 503 and attempt < self.retries:
                attempt += 1
                wait = retry_after(response)
                self.notify(f"{error_of(response)}; retrying in {wait:g}s ({attempt}/{self.retries})")
                time.sleep(wait)
                continue
            if response.is_error:
                raise CliError(error_of(response))
            return response

    def get_json(self, path: str, **params: Any) -> Any:
        given = {k: v for k, v in params.items() if v is not None}
        return self.request("GET", path, params=given).json()

    def post_json(self, path: str, body: Any) -> Any:
        return self.request("POST", path, json=body).json()

    @contextmanager
    def stream(
        self, path: str, *, headers: dict[str, str], params: dict[str, str], read_timeout: float
    ) -> Iterator[httpx.Response]:
        """A streamed GET (the event stream): an error answer raises ``CliError``, a 503 ``Unavailable``, which
        the caller, reconnecting on its own schedule anyway, retries."""
        timeout = httpx.Timeout(self.http.timeout.connect, read=read_timeout)
        try:
            with self.http.stream("GET", path, headers=headers, params=params, timeout=timeout) as response:
                if response.is_error:
                    response.read()
                    if response.status_code == 503:
                        raise Unavailable(error_of(response), retry_after(response))
                    raise CliError(error_of(response))
                yield response
        except httpx.ConnectError as exc:
            raise self._unreachable(exc) from exc
