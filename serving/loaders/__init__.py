"""Platform loaders: turn a version directory into a servable."""
