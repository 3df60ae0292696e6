"""Feature builders: automatic tabular features (fitted in-fold) and phrase features."""
