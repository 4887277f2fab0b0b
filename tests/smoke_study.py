"""The smoke study's name: results/<SMOKE_STUDY>/ is config/smoke.yaml run once per test session (the `smoke`
fixture of tests/conftest.py)."""

SMOKE_STUDY = "pytest_smoke"
