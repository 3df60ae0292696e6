"""The competitions kagtools ships: their specs (``competitions/*.toml``) and pipeline modules
(``pipelines/*.py``). A wheel carries them here, from the repository's top-level folders of the
same names; :func:`kagtools.core.environment.shipped_dir` finds them in either place."""
