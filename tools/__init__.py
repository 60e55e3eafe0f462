"""Developer tools: model zoo, benchmarks, setup scripts (not part of the installed package)."""
