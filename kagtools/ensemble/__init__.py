"""Ensembles over recorded OOF predictions: blenders, nested fitting, ensemble-level boosting.

:mod:`kagtools.ensemble.blend` turns them into runs; this package holds the methods.
"""

from kagtools.ensemble.blenders import BLENDERS, Blender, make_blender
from kagtools.ensemble.nested import Level1, NestedBlend, load_level1, nested_blend
from kagtools.ensemble.scoring import batch_score, best_threshold, needs_threshold

__all__ = ["BLENDERS", "Blender", "make_blender", "Level1", "NestedBlend", "load_level1", "nested_blend",
           "batch_score", "best_threshold", "needs_threshold"]
