"""The experiment catalogue: which runs each scale launches (suites), their plan and cost, `make reproduce`."""
