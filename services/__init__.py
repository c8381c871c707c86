"""The services of the platform; each imports only `shared`, never another service."""
