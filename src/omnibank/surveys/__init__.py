"""Surveys (X2): definitions, the events that trigger them, sending through the one contact policy with its
fatigue control, and the responses that come back as ``survey.response`` events."""
