# Exposure agent (issue 5).
#   make exposure-docs    regenerate the check table of docs/exposure.md from the registry
#   make bench-scan       only the scan benchmark (bench/results/scan.json)
.PHONY: exposure-docs bench-scan

exposure-docs: setup
	$(PY) -m isoloir.exposure.docs docs/exposure.md

bench-scan: setup
	@mkdir -p bench/results
	$(PY) bench/scan/run.py --out bench/results
