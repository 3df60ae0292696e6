"""Base layer: specs, data, folds, the fold engine, runs, submissions, metrics, registries."""
