"""Thin gRPC adapters: TF Serving's PredictionService and ModelService, our
RolloutService extension, and the server that hosts them."""
