"""One module per tab; each has plain handler functions and a `build(ctx)` that lays the tab out."""
