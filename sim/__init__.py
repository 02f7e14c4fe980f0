"""Simulation: experiment config, campaign planning, Ray orchestration, results, the CLI."""
