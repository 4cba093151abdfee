"""Start-up configuration: tensorflow_model_server's flags, the model, monitoring,
batching and SSL config files, and TF Serving's config rules. Text in, values out."""
