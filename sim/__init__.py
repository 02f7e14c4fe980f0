"""The simulation engine: experiment config, campaign planning, the Ray workers and replicas, the run loop, checkpoints and tracking."""
