"""ssr_datasets: image sources in, WebDataset shards out, and the reader back.

Imported as ``ssr_datasets`` (setuptools package-dir) so it never collides with
Hugging Face's ``datasets``.
"""
