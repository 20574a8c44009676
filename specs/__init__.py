"""Declarative specs shipped with fmicl-registry (package data: divergences/*.toml, ...)."""
