"""Shots: reading and rendering a shot, workflows, farm segments, the demo clip and its contact sheet."""
