"""Typed Pulumi infrastructure-as-code for a production BinderHub on Jetstream2.

The package is import-light on purpose: the CLI's ``--help`` must not pay for Pulumi's
import time, so nothing here imports ``pulumi`` at module level.
"""

__version__ = "0.1.0"
