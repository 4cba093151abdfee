"""The bundled TensorFlow Serving-compatible model server."""
