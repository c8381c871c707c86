"""Developer tooling: the local process stack (make run / up / down / status), its demo and the sample data."""
