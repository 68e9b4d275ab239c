"""Provider adapters; the registry below is the only place that names providers."""
