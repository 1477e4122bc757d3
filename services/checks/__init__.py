"""The periodic data-quality checks (services/checks/service.py)."""
