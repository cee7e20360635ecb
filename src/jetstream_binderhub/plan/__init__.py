"""The offline plan: the real programs under Pulumi's mock runtime, no cloud, no CLI, no credentials."""
