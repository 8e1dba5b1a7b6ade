"""File ingestion core for Datanets: parsing, record validation, hashing, near-duplicate detection, manifests.

Plain Python with no Django imports, so it can be tested, benchmarked and reused alone.
"""
