"""Report: the HTML report, its figures, Kaplan-Meier plots and the reporting checklist."""
