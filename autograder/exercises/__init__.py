"""Exercise specifications, one module per lesson."""
