"""Connectors the scheduler uses to pull data: HTTP(S) downloads, incremental SQL sources, the landing prefix.

Every connector hands its bytes to :meth:`IngestService.accept` as a stream, so a pulled file gets exactly
what an upload gets: format detection, the contract check, dedupe by content, the batch row and its outbox
event. Nothing is read into memory whole.
"""
