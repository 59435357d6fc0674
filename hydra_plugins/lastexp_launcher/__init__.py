"""lastexp's Hydra launcher plugins (Hydra loads plugins from the ``hydra_plugins`` package)."""
