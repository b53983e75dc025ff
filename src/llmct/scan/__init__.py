"""The CT scan: scenario -> single-pass conversation snapshots -> reference metrics -> report."""

from llmct.scan.scenario import Scenario, ScenarioError, load_scenario

__all__ = ["Scenario", "ScenarioError", "load_scenario"]
