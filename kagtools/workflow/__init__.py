"""The application layer: a competition's context, its pipeline module, and the submit flow."""
