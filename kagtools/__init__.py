"""kagtools: from a Kaggle competition's files to a strong, validated submission."""

from kagtools.errors import KagtoolsError

__all__ = ["KagtoolsError", "__version__"]
__version__ = "0.1.0"
