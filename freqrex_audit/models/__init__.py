"""The classifier the engine queries: the ``Classifier`` contract, the ``QueryEngine`` every query passes
through, what crosses the model boundary, content fingerprints, the model's input window and the load-time
self-check."""
