"""Settlement latency benchmark (`make bench`): load generator, report, sweep."""
