# bench-metrics: metrics on vs compiled out (placeholder).
.PHONY: bench-metrics
bench-metrics:
	@echo "bench-metrics: not built yet"
