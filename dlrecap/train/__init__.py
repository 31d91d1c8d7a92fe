"""Training: set up TensorFlow, run an engine, and record everything in the run directory."""
