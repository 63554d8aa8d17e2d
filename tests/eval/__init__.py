"""Tests of eval: metrics, scorer and the ssr-eval CLI."""
