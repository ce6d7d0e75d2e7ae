"""Region sources: detectors, faces, annotation files and grid windows, registered by name."""
