"""Property checks for divergences (hypothesis strategies, check_divergence, pytest plugin)."""
