"""Community datasets: Datanet, Membership, Upload, Contribution, Record, Vote, Snapshot and a contributor's standing.
``services/`` holds the writes by capability (datanets, uploads, ingestion, review, snapshots, standing),
``selectors`` the reads filtered by who may see them, and ``ingest/`` the Django-free parsers, schema, hashing,
MinHash, manifest and exports. Imports core and accounts."""
