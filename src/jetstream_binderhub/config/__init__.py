"""Typed site configuration: one frozen pydantic model per concern."""
