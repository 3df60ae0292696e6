"""Deep learning for kagtools: a lean torch trainer (:mod:`kagtools.dl.trainer`) and image
helpers (:mod:`kagtools.dl.images`). Imported only by the deep-learning models, so the
classical path never pays for importing torch."""
