"""Who we are: name, version and release date (XEP-0092, XEP-0232, summitctl)."""

NAME = "summitd"
VERSION = "0.1.0"
RELEASE_DATE = "2026-11-24"
