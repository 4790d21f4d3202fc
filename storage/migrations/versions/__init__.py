"""The schema revisions, oldest first (0001_initial.py creates every table, 0002_samples.py adds
the sample images of evaluated plans)."""
