"""Journeys: triggers, steps and routing that reach each customer through the right channel."""
