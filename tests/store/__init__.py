"""Tests of the storage adapters (存储适配)."""
