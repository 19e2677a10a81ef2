"""Synthetic cohorts: the demo cohort and the faulty cohorts used by the tests."""
