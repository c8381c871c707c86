"""Common library of the sales data platform: settings, contracts, clients. Services share only this."""
