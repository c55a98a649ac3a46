"""Tests of pure functions: no server, no subprocess, no network."""
