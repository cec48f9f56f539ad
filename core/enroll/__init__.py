"""Enrollment: video(s) of a person talking -> a verified avatar package, as named stages."""
