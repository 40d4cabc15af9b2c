"""Leads for branch staff: online behaviour handed to the customer's RM or the branch queue, followed up."""
