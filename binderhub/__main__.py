"""Entry point of the BinderHub layer for `pulumi -C binderhub up -s <site>` (see Pulumi.yaml)."""

from jetstream_binderhub.hub.program import hub_program

hub_program()
