"""Training machinery: engines, callbacks, checkpoints, devices and distribution.

Nothing here draws, prints, exits or imports the modules above it (`dlrecap.pipeline` puts
these pieces together into one run).
"""
