"""Deploy step: serve a registered version, as the first stable service or as a canary next to the
champion (the spec's traffic share). See `core.deploy_canary`."""
