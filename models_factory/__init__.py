"""The Model Factory: specialized models trained on a Datanet's snapshot (training runs, versions with lineage,
deployment and pricing), the Django-free ``trainers/`` and ``serving/`` (predictors, the encoder that attribution
uses, the in-process model cache). Imports core, accounts and datanets."""
