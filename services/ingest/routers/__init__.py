"""The ingest HTTP routes, one module per resource; ``services.ingest.app`` includes them."""
