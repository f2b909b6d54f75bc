"""Test doubles for the I/O edges that devenv does not stand in for in unit tests."""
