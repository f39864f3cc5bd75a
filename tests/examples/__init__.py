"""Tests of the training examples in examples/."""
