"""The CT scan: scenario -> single-pass conversation snapshots -> reference metrics -> report."""

from .scenario import Scenario, ScenarioError, load_scenario

__all__ = ["Scenario", "ScenarioError", "load_scenario"]
