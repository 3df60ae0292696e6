"""CLI verbs beyond the core ones: every module here is imported by ``kagtools.cli`` and adds
its verbs with ``@command``/``@options`` from :mod:`kagtools.cli`."""
