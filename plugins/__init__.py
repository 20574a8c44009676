"""The built-in plugins of fmicl-registry (installed as ``fmicl_registry.builtin_plugins``).

They register the built-in components through the same hooks as any third-party plugin. Each
imports what it registers inside its hook, not at the top of its module: the command line
loads every plugin when it starts (for the commands they add), and ``fmicl --help`` must not
pay for torch.
"""
