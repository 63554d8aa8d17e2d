"""Data, not code: recipe files and the shard schema, installed as package data."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent
RECIPES_DIR = ROOT / "recipes"
SCHEMA_DIR = ROOT / "schema"
