"""Judging and shipping an encoder: kNN accuracy, the linear probe, and export to a plain state dict."""
