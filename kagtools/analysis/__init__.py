"""Looking at the data: the EDA report, the split advisor, spec inference and model explanations."""
