"""Plots (arrays in, Figure out) and reports (Markdown / HTML)."""
