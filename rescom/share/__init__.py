"""Sharing a campaign: run folders fetched from a DVC remote (pull.py) and registered as MLflow runs
(register.py), so a colleague sees a lab's runs without training them again (docs/sharing.md)."""
