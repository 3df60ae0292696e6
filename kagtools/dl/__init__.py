"""Deep learning for kagtools: a lean torch trainer (:mod:`kagtools.dl.trainer`) and image
helpers (:mod:`kagtools.dl.vision`). Imported only by the deep-learning models, so the
classical path never pays for importing torch."""
