"""Metabase provisioning: ``python -m ops.metabase provision`` makes the analytics schema's data source, a
collection and the "Sales overview" dashboard through Metabase's REST API, and changes nothing when they
are already as it would make them."""
