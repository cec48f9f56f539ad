"""Marks that say an output is synthetic: an invisible watermark in the pixels, C2PA Content
Credentials on files, a visible live badge, and the consent record of each avatar."""
