"""Thin REST adapter: TF Serving's HTTP API on ASGI, and its JSON codec (request
parsing, response writing, rapidjson's error texts)."""
