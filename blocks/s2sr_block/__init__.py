"""The UP42 processing-block adapter around the s2sr library: parameters, data.json, quicklooks, exit codes."""
