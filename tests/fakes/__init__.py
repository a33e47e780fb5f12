"""Local fakes of external services, used so tests exercise the real client libraries."""
