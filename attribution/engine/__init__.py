"""Proof-of-Attribution engine: plain PyTorch/numpy, no Django.

- ``GradientIndex``: per-inference attribution from projected training gradients (TRAK / influence functions).
- ``SpanIndex``: verbatim spans of generated text found in the training data (infini-gram / OLMoTrace).
- ``SQ8Index``: approximate inner-product search (faiss int8 scalar quantizer, sharded, exact rerank) for 200k+ records;
  ``IVFIndex``: k-means inverted lists, kept for comparison.
- ``knn_shapley``: exact KNN-Shapley values of training records against a validation set (epoch valuation).
- ``cross_fit``: out-of-fold label probabilities (confident-learning style check of each record's label).
- ``representation_similarity``: the embedding-similarity baseline; ``collapse_duplicates``: one credit per cluster.
"""

from attribution.engine.crossfit import CrossFit, cross_fit
from attribution.engine.gradient import GradientIndex, IndexMismatch
from attribution.engine.search import IVFIndex, SQ8Index, TopK, top_k_inner_product
from attribution.engine.spans import Span, SpanIndex
from attribution.engine.valuation import collapse_duplicates, knn_shapley, representation_similarity

__all__ = [
    "CrossFit",
    "GradientIndex",
    "IVFIndex",
    "SQ8Index",
    "IndexMismatch",
    "Span",
    "SpanIndex",
    "TopK",
    "collapse_duplicates",
    "cross_fit",
    "knn_shapley",
    "representation_similarity",
    "top_k_inner_product",
]
