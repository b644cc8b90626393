"""Differential conformance tier: xarch vs Docker BuildKit on a Dockerfile corpus."""
