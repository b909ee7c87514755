"""Deployment tests: Ansible syntax and lint, rendered configs, a real converge."""
