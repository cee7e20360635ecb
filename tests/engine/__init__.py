"""Tests of the engine-event diff, its pull-request rendering and the apply guard.

The JSON lines under events/ are engine events in the shape `pulumi --event-log` writes
(sdk/go/common/apitype/events.go) for a site "pythia" on Jetstream2.
"""
