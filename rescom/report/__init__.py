"""Reports: the paper's tables and figures rendered from finished runs, and diffs between report trees."""
