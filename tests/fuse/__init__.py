"""Tests of terrapipe.fuse."""
