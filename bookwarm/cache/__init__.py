"""Cache tiers: Redis (hot) and an S3-compatible object store (cold)."""
