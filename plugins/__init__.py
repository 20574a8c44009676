"""The built-in plugins of fmicl-registry (installed as ``fmicl_registry.builtin_plugins``).

They register the built-in components through the same hooks as any third-party plugin.
"""
