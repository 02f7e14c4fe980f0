"""The application: the ``immune`` CLI, the scan service, the rule-set registry commands and the benches.

The only package that imports both the engine (``sim``) and the evolution loop (``evolve``).
"""
