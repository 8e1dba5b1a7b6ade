"""Proof of Attribution: the Django-free ``engine/`` (gradient influence, spans, search, valuation), per-version
indexes, a receipt for every inference, epoch valuation and its flags. Imports everything up to models_factory."""
