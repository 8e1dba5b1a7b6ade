"""Proof of Attribution: the Django-free ``engine/`` (gradient influence, spans, search, valuation); ``indexes``
(built per version when it registers, kept on disk, loaded), ``receipts`` (one for every paid inference, with
contributor shares, recomputable), ``valuation`` (the epoch valuation and the flags curators resolve). It plugs into
the Model Factory through ``models_factory.hooks``. Imports everything up to models_factory."""
