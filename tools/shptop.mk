# shptop: the live monitor (placeholder until tools/shptop.c lands).
.PHONY: shptop-test
shptop-test:
	@echo "shptop-test: not built yet"
