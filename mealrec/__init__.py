"""MealRec companion: datasets, full-ranking evaluation and models for reproducing
*MealRec: Multi-granularity Sequential Modeling via Hierarchical Diffusion Models for
Micro-Video Recommendation* (arXiv 2603.01926)."""

__version__ = "0.1.0"
