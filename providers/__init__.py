"""dso providers: each sub-package is a standalone program spoken to over provider protocol v1.

``providers.sdk`` is what a provider imports; ``providers.<name>`` runs as
``python -m providers.<name>`` from source or as the frozen ``dso-provider-<name>``.
"""
