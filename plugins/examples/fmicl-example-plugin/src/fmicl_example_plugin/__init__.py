"""An example third-party plugin for fmicl-registry."""
