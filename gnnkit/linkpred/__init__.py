"""Link prediction without leakage: splits, negative sampling, leakage checks, metrics."""
