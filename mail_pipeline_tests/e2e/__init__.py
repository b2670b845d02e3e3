"""End-to-end tests with the real Dagster processes (daemon, webserver, run workers)."""
