"""The cluster layer: Magnum template, cluster and node groups on OpenStack.

The Pulumi program directory `infra/` at the repository root is a two-line entry point into
:func:`jetstream_binderhub.infra.program.cluster_program`; everything lives here so the CLI, the
Automation API and the offline plan run the very same code.
"""
