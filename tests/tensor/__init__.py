"""Tests of terrapipe.tensor."""
