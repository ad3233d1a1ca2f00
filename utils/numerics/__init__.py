"""Reusable tensor math under the engine: vector lanes, parameter rows, B-splines."""
