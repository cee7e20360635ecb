"""Entry point of the cluster layer for `pulumi up -s <site>` (see Pulumi.yaml: `main: infra/`)."""

from jetstream_binderhub.infra.program import cluster_program

cluster_program()
