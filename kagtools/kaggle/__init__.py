"""Kaggle itself: the API client wrapper and kernels (bundle, push, run, import)."""
