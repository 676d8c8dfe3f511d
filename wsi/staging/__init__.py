"""Patients' pN stages from their nodes' classes (Camelyon17)."""
