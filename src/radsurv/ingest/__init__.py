"""Ingest: DICOM discovery, image and contour reading, PET SUV, conversion, the image sheet and the clinical table."""
