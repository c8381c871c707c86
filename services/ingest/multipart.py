"""A streaming reader for multipart uploads: the ``file`` part's bytes flow on as they arrive.

Starlette's form parser spools a whole file to disk before the endpoint runs, so a size limit could only
be checked afterwards and every byte would be written twice. Here the body is parsed as it streams; the
file part's data feeds the same path as a raw-body upload.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from python_multipart import MultipartParser
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import parse_options_header

from shared.http import ApiError

FILE_FIELD = "file"
# Bytes of other form fields read (and dropped) before the file part: a form is not a second upload.
MAX_OTHER_FIELDS_BYTES = 64 * 1024


@dataclass
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    name: str = ""
    filename: str | None = None
    content_type: str = ""


@dataclass
class _State:
    part: _Part | None = None
    field_name: bytes = b""
    field_value: bytes = b""
    file: _Part | None = None
    file_done: bool = False
    files_seen: int = 0
    other_bytes: int = 0
    pending: list[bytes] = field(default_factory=list)


@dataclass(frozen=True)
class MultipartFile:
    file_name: str | None
    content_type: str
    chunks: AsyncIterator[bytes]


def _boundary(content_type: str) -> bytes:
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise ApiError(400, "invalid_multipart", "a multipart upload needs a boundary in its Content-Type")
    return boundary


async def open_file_part(content_type: str, body: AsyncIterator[bytes]) -> MultipartFile:
    """Parse up to the headers of the ``file`` part; its data is then read on demand."""
    state = _State()

    def on_part_begin() -> None:
        state.part = _Part()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state.field_name += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state.field_value += data[start:end]

    def on_header_end() -> None:
        assert state.part is not None
        state.part.headers[state.field_name.lower()] = state.field_value
        state.field_name, state.field_value = b"", b""

    def on_headers_finished() -> None:
        part = state.part
        assert part is not None
        _, disposition = parse_options_header(part.headers.get(b"content-disposition", b""))
        part.name = disposition.get(b"name", b"").decode("utf-8", "replace")
        raw_filename = disposition.get(b"filename")
        part.filename = raw_filename.decode("utf-8", "replace") if raw_filename is not None else None
        part.content_type = part.headers.get(b"content-type", b"").decode("latin-1")
        if part.name == FILE_FIELD and part.filename is not None:
            state.files_seen += 1
            if state.files_seen > 1:
                raise ApiError(400, "too_many_files", "one file per upload")
            state.file = part

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state.part is not None and state.part is state.file and not state.file_done:
            state.pending.append(data[start:end])
            return
        state.other_bytes += end - start
        if state.other_bytes > MAX_OTHER_FIELDS_BYTES:
            raise ApiError(400, "invalid_multipart", "form fields besides the file are limited to 64 KiB")

    def on_part_end() -> None:
        if state.part is not None and state.part is state.file:
            state.file_done = True

    parser = MultipartParser(
        _boundary(content_type),
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )

    def feed(chunk: bytes) -> None:
        try:
            parser.write(chunk)
        except MultipartParseError as exc:
            raise ApiError(400, "invalid_multipart", f"the multipart body is malformed: {exc}") from exc

    async for chunk in body:
        feed(chunk)
        if state.file is not None:
            break
    if state.file is None:
        raise ApiError(400, "missing_file", "multipart uploads carry the file in the field 'file'")

    async def file_chunks() -> AsyncIterator[bytes]:
        while True:
            if state.pending:
                pending, state.pending = state.pending, []
                yield b"".join(pending)
            try:
                chunk = await anext(body)
            except StopAsyncIteration:
                break
            feed(chunk)
        parser.finalize()
        if not state.file_done:
            raise ApiError(400, "invalid_multipart", "the multipart body ended inside the file part")
        if state.pending:
            yield b"".join(state.pending)

    return MultipartFile(state.file.filename, state.file.content_type, file_chunks())
