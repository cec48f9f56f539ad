"""The avatar package: its files, verification, writing and safe unpacking."""
