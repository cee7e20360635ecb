"""The Python API: operate a site's two stacks through Pulumi's Automation API.

    from jetstream_binderhub.automation import Site

    site = Site.from_files("jetstream2")
    print(site.preview().counts)

See docs/python-api.md. Importing this package does not import Pulumi; operations do.
"""

from jetstream_binderhub.automation.environment import MINIMUM_PULUMI, Backend
from jetstream_binderhub.automation.errors import (
    CredentialsMissing,
    DestroyRefused,
    EnvironmentNotReady,
    Interrupted,
    NotConfirmed,
    OutputFileExists,
    PassphraseMissing,
    PassphraseWrong,
    PlanViolated,
    PulumiCliMissing,
    PulumiCliTooOld,
    Refused,
    StackLocked,
    StackNotFound,
    StateProblem,
    UpdateFailed,
)
from jetstream_binderhub.automation.progress import ConsoleProgress, NullProgress, Progress
from jetstream_binderhub.automation.results import (
    Layer,
    LayerOutputs,
    LayerResult,
    Secret,
    SiteResult,
)
from jetstream_binderhub.automation.site import Site, SiteLayout
from jetstream_binderhub.automation.stacks import (
    LayerSpec,
    LayerStack,
    PulumiStacks,
    StackOpener,
    StateResource,
)

__all__ = [
    "MINIMUM_PULUMI",
    "Backend",
    "ConsoleProgress",
    "CredentialsMissing",
    "DestroyRefused",
    "EnvironmentNotReady",
    "Interrupted",
    "Layer",
    "LayerOutputs",
    "LayerResult",
    "LayerSpec",
    "LayerStack",
    "NotConfirmed",
    "NullProgress",
    "OutputFileExists",
    "PassphraseMissing",
    "PassphraseWrong",
    "PlanViolated",
    "Progress",
    "PulumiCliMissing",
    "PulumiCliTooOld",
    "PulumiStacks",
    "Refused",
    "Secret",
    "Site",
    "SiteLayout",
    "SiteResult",
    "StackLocked",
    "StackNotFound",
    "StackOpener",
    "StateProblem",
    "StateResource",
    "UpdateFailed",
]
