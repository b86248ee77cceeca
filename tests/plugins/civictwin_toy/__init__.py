"""A toy engine plug-in for the tests, shaped like a third-party package: civictwin finds it only
through its entry point (tests/unit/engines/plugin.py writes the package's ``*.dist-info``)."""
