"""Django-free serving: ``classifier`` (a classifier artifact's predictor, its embeddings and its gradient head),
``generative`` (many LoRA adapters on one shared base model), ``encoders`` (the packaged sentence encoder) and
``cache`` (the models a process keeps loaded). Each module loads torch; this package does not, on import."""
