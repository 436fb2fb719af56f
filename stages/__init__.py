"""One thin module per DVC stage: parse paths, validate params, call pipelines.*, write, track."""
