"""The Model Factory: specialized models trained on a Datanet's snapshot (training runs, versions with lineage,
deployment and pricing, paid inference), the Django-free ``trainers/`` and ``serving/`` (predictors with the
embeddings and gradient head attribution reads, the sentence encoder, the in-process model cache), ``predictors``
(a version's loaded model) and ``hooks`` (where apps to its right subscribe). Imports core, accounts and datanets."""
