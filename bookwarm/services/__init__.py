"""Real local Redis and S3-compatible servers for the embedded default, demos and tests."""
