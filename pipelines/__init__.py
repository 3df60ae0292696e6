"""Competition pipelines: features, models and params, one module per competition."""
